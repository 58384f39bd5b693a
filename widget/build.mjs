// Bundle the widget (dist/loader.js) and the agent console (dist/console.js + console.html).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

mkdirSync("dist", { recursive: true });
const common = { bundle: true, minify: true, format: "iife", target: ["es2019"], legalComments: "none", logLevel: "warning" };
await build({ ...common, entryPoints: ["src/loader.js"], outfile: "dist/loader.js" });
await build({ ...common, entryPoints: ["src/console.js"], outfile: "dist/console.js" });
copyFileSync("src/console.html", "dist/console.html");
for (const f of ["loader.js", "console.js"]) {
  const buf = readFileSync(`dist/${f}`);
  console.log(`widget/dist/${f}: ${buf.length} bytes, ${gzipSync(buf, { level: 9 }).length} gzipped`);
}
