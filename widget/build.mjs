// Bundle the widget (dist/loader.js) and the agent console (dist/console.js + console.html).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

mkdirSync("dist", { recursive: true });
const common = { bundle: true, minify: true, format: "iife", target: ["es2019"], legalComments: "none", logLevel: "warning" };
await build({ ...common, entryPoints: ["src/loader.js"], outfile: "dist/loader.js" });
await build({ ...common, entryPoints: ["src/console.js"], outfile: "dist/console.js" });
copyFileSync("src/console.html", "dist/console.html");
// precompressed beside each asset: the gateway serves the variant a browser accepts
// (gateway/http/static.py), so nothing is compressed per request
for (const f of ["loader.js", "console.js", "console.html"]) {
  const buf = readFileSync(`dist/${f}`);
  const gz = gzipSync(buf, { level: 9 });
  const br = brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11,
                                                 [constants.BROTLI_PARAM_SIZE_HINT]: buf.length } });
  writeFileSync(`dist/${f}.gz`, gz);
  writeFileSync(`dist/${f}.br`, br);
  console.log(`widget/dist/${f}: ${buf.length} bytes, ${gz.length} gzipped, ${br.length} brotli`);
}
