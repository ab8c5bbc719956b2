// Bundle the admin console (console/src, with the SDK's sources) into one ES module that
// the API serves at /admin/assets/console.js. The output is committed, so `make run` needs
// no Node; a test rebuilds it and fails when it differs from the sources.
//   node build-console.mjs [OUT.js]     (default: app/http/console_assets/console.js)
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";
import * as esbuild from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? resolve(root, "app/http/console_assets/console.js"));
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["console/src/main.ts"],
  outfile: out,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  banner: { js: "// Built by `make console` from console/src: do not edit." },
});
