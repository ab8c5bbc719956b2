// openapi-typescript through its API rather than its CLI, for one transform: a binary
// string (`format: binary`: file uploads and downloads) is bytes in TypeScript, not a
// `string`, so `body: new Uint8Array(...)` or a `Blob` compiles and `body: "text"` does not;
// and `{"not": {}}` is `never`.
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
const never = ts.factory.createKeywordTypeNode(ts.SyntaxKind.NeverKeyword);
// `{"not": {}}` matches nothing: the live contract types an update operator on a field it
// cannot apply to that way (`inc` on a string), so such code does not compile.
const matchesNothing = (schema) =>
  Object.keys(schema).length === 1 &&
  schema.not !== null &&
  typeof schema.not === "object" &&
  Object.keys(schema.not).length === 0;
const ast = await openapiTS(pathToFileURL(input), {
  // A default is what the server uses when a field is left out, so it stays optional.
  defaultNonNullable: false,
  transform(schema) {
    if (schema.format === "binary") return bytes;
    if (matchesNothing(schema)) return never;
    return undefined;
  },
});
writeFileSync(output, astToString(ast));
