// Bundles entry.js with ODK Web Forms and Vue into one ES module for host.html.
//   node build.mjs OUTDIR
import { build } from "esbuild";
import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
await build({
    entryPoints: [join(here, "entry.js")],
    bundle: true,
    format: "esm",
    splitting: true,
    outdir: out,
    entryNames: "webforms.bundle",
    loader: { ".ico": "file", ".woff": "file", ".woff2": "file", ".ttf": "file", ".svg": "file", ".png": "file" },
    define: { "process.env.NODE_ENV": '"production"', __VUE_OPTIONS_API__: "true", __VUE_PROD_DEVTOOLS__: "false", __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: "false" },
    logLevel: "warning",
});
copyFileSync(join(here, "host.html"), join(out, "host.html"));
