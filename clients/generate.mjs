// openapi-typescript through its API rather than its CLI, for one transform: a binary
// string (`format: binary`: file uploads and downloads) is bytes in TypeScript, not a
// `string`, so `body: new Uint8Array(...)` or a `Blob` compiles and `body: "text"` does not.
//   node generate.mjs CONTRACT.json OUT.d.ts
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import openapiTS, { astToString } from "openapi-typescript";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node generate.mjs CONTRACT.json OUT.d.ts");
  process.exit(2);
}
const bytes = ts.factory.createUnionTypeNode(
  ["Blob", "Uint8Array", "ArrayBuffer"].map((name) => ts.factory.createTypeReferenceNode(name)),
);
const ast = await openapiTS(pathToFileURL(input), {
  transform(schema) {
    if (schema.format === "binary") return bytes;
    return undefined;
  },
});
writeFileSync(output, astToString(ast));
