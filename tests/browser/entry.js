// The host page's script, bundled by esbuild (build.mjs) into one ES module: mounts ODK Web
// Forms' <OdkWebForm> (a Vue component, with its plugin) on #form with the XForm that the page
// downloaded from Fieldvault, and POSTs the instance its "submit" event hands over to Fieldvault's
// OpenRosa submission URL as multipart/form-data (the payload's FormData already carries the XML as
// xml_submission_file, as ODK Central expects it). The page is served by the test under
// Fieldvault's own origin, so both requests are same-origin: no CORS needed.
import { createApp, h } from "vue";
import { OdkWebForm, webFormsPlugin } from "@getodk/web-forms";

const status = (s) => {
    document.body.dataset.fvStatus = s;
};

async function main() {
    const params = new URLSearchParams(location.search);
    const openrosa = params.get("openrosa"); // the deployment's OpenRosa URL (app-user token path)
    window.fvResult = null;
    status("loading");
    const form = await fetch(`${openrosa}/formList`, { headers: { "X-OpenRosa-Version": "1.0" } });
    const list = new DOMParser().parseFromString(await form.text(), "text/xml");
    const url = list.getElementsByTagNameNS("*", "downloadUrl")[0]?.textContent;
    if (!url) throw new Error(`no downloadUrl in formList (${form.status})`);
    const xml = await (await fetch(url, { headers: { "X-OpenRosa-Version": "1.0" } })).text();
    const onSubmit = async (payload, callback) => {
        status("submitting");
        try {
            const instance = payload.data[0];
            const r = await fetch(`${openrosa}/submission`, {
                method: "POST",
                headers: { "X-OpenRosa-Version": "1.0" },
                body: instance,
            });
            window.fvResult = {
                status: r.status,
                body: await r.text(),
                instanceXml: await instance.get("xml_submission_file").text(),
                payloadStatus: payload.status,
            };
            callback({});
            status("submitted");
        } catch (e) {
            window.fvError = `submission: ${e && e.stack ? e.stack : e}`;
            status("error");
        }
    };
    const app = createApp({
        render: () =>
            h(OdkWebForm, {
                formXml: xml,
                fetchFormAttachment: (u) => fetch(u),
                onSubmit,
            }),
    });
    app.use(webFormsPlugin);
    app.mount("#form");
    status("rendered");
}

main().catch((e) => {
    window.fvError = String(e && e.stack ? e.stack : e);
    status("error");
});
