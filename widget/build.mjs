// Bundle the widget and the agent console into dist/:
//   widget.<hash>.js   the widget (src/main.js), named by a hash of its content
//   loader.js          the small script sites embed (src/loader.js), naming that bundle
//   console.<hash>.js  the agent console (src/console.js)
//   console.html       its page, naming that bundle
// The gateway caches the hashed files for good (immutable) and the rest briefly
// (gateway/widget/routes.py), so a new build reaches every browser within minutes.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

mkdirSync("dist", { recursive: true });
// older builds' files go, but for the bundles the previous loader.js and console.html name:
// a browser that still has that loader cached (minutes) can fetch what it names
const HASHED = /^(widget|console)\.[0-9a-f]{10}\.js/;
const previous = new Set();
for (const f of ["loader.js", "console.html"]) {
  try { for (const m of readFileSync(`dist/${f}`, "utf8").matchAll(/(widget|console)\.[0-9a-f]{10}\.js/g)) previous.add(m[0]); } catch { /* first build */ }
}
for (const f of readdirSync("dist")) {
  const m = f.match(HASHED);
  if (m ? !previous.has(m[0]) : /\.(js|html)(\.br|\.gz)?$/.test(f)) rmSync(`dist/${f}`);
}
const common = { bundle: true, minify: true, format: "iife", target: ["es2019"], legalComments: "none", logLevel: "warning" };

async function bundle(entry, define = {}) {
  const r = await build({ ...common, entryPoints: [entry], write: false, define });
  return r.outputFiles[0].contents;
}

function hashed(name, buf) {
  const file = `${name}.${createHash("sha256").update(buf).digest("hex").slice(0, 10)}.js`;
  writeFileSync(`dist/${file}`, buf);
  return file;
}

const widget = hashed("widget", await bundle("src/main.js"));
writeFileSync("dist/loader.js", await bundle("src/loader.js", { __WIDGET_FILE__: JSON.stringify(widget) }));
const consoleJs = hashed("console", await bundle("src/console.js"));
const page = readFileSync("src/console.html", "utf8");
if (!page.includes('src="/widget/console.js"')) throw new Error("console.html: no /widget/console.js script");
writeFileSync("dist/console.html", page.replace('src="/widget/console.js"', `src="/widget/${consoleJs}"`));

// precompressed beside each asset: the gateway serves the variant a browser accepts
// (gateway/http/static.py), so nothing is compressed per request
for (const f of ["loader.js", widget, consoleJs, "console.html"]) {
  const buf = readFileSync(`dist/${f}`);
  const gz = gzipSync(buf, { level: 9 });
  const br = brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11,
                                                 [constants.BROTLI_PARAM_SIZE_HINT]: buf.length } });
  writeFileSync(`dist/${f}.gz`, gz);
  writeFileSync(`dist/${f}.br`, br);
  console.log(`widget/dist/${f}: ${buf.length} bytes, ${gz.length} gzipped, ${br.length} brotli`);
}
