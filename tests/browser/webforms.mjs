// The browser half of tests/integration/test_browser_webforms.py (issue 13's browser proof):
// Debian's Chromium (headless, driven by playwright-core, no browser download) opens the host page
// under Fieldvault's origin, where ODK Web Forms downloads the deployment's XForm over the real
// TLS front end (formList, then the form), renders it; this script fills the fields as a person
// would (typing, clicking) and presses Send; the page POSTs the instance to Fieldvault.
//
//   node webforms.mjs CONFIG.json     (prints one JSON line: the page's result)
//
// CONFIG: {origin, openrosa, bundle_dir, spki, chromium, answers: {text, integer, choice_label,
// text_label, integer_label}}, or load_only: true to report only whether the form loaded.
// Chromium trusts only the test's own certificate: --ignore-certificate-errors-spki-list names
// the SHA-256 of its public key (any other certificate is still refused).
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
const log = [];

const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [`--ignore-certificate-errors-spki-list=${cfg.spki}`, "--no-sandbox"],
    timeout: 30000,
});
async function run() {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${e}`));
    // The host page and its bundle, served under Fieldvault's origin (same-origin requests).
    await page.route(`${cfg.origin}/webforms/**`, (route) => {
        const name = normalize(new URL(route.request().url()).pathname.slice("/webforms/".length));
        if (name.startsWith("..")) return route.fulfill({ status: 404 });
        try {
            const body = readFileSync(join(cfg.bundle_dir, name));
            return route.fulfill({ status: 200, body, contentType: TYPES[extname(name)] ?? "application/octet-stream" });
        } catch {
            return route.fulfill({ status: 404 });
        }
    });
    const url = `${cfg.origin}/webforms/host.html?openrosa=${encodeURIComponent(cfg.openrosa)}`;
    await page.goto(url);
    if (cfg.load_only) {
        // Only how far the page got: "rendered" once the form came over TLS, else "error".
        await page.waitForFunction(() => ["rendered", "error"].includes(document.body.dataset.fvStatus));
        return page.evaluate(() => ({ status: document.body.dataset.fvStatus, error: window.fvError ?? null }));
    }
    const a = cfg.answers;
    // Rendered: every question's label is on the page.
    await page.getByText(a.text_label, { exact: false }).first().waitFor();
    await page.getByText(a.integer_label, { exact: false }).first().waitFor();
    await page.getByText(a.choice_label, { exact: true }).first().waitFor();
    const inputs = page.locator("#form input");
    const send = page.getByRole("button", { name: /send|submit/i });
    const steps = [];
    // The form's rules hold in the browser: Send on the empty form names the required fields
    // and submits nothing.
    await send.click();
    await page.getByText("Condition not satisfied: required").first().waitFor();
    steps.push({ step: "empty send", status: await page.evaluate(() => document.body.dataset.fvStatus) });
    const text = page.locator("#form input[type=text], #form textarea").first();
    await text.click();
    await text.pressSequentially(a.text);
    const num = page.locator("#form input[inputmode=numeric], #form input[type=number]").first();
    await num.click();
    // outside the XForm's constraint (1 to 50) first: refused in the page
    await num.pressSequentially(String(a.bad_integer));
    await page.getByText(a.choice_label, { exact: true }).first().click();
    await send.click();
    await page.getByText("Condition not satisfied: constraint").first().waitFor();
    steps.push({ step: "constraint send", status: await page.evaluate(() => document.body.dataset.fvStatus) });
    await num.fill("");
    await num.pressSequentially(String(a.integer));
    await send.click();
    await page.waitForFunction(() => ["submitted", "error"].includes(document.body.dataset.fvStatus) && (window.fvResult || window.fvError));
    const out = await page.evaluate(() => ({ result: window.fvResult, error: window.fvError ?? null }));
    out.inputs = await inputs.count();
    out.steps = steps;
    return out;
}

let result;
try {
    result = await run();
} catch (e) {
    result = { error: String(e && e.stack ? e.stack : e) };
} finally {
    await browser.close();
}
result.log = log;
process.stdout.write(JSON.stringify(result) + "\n");
