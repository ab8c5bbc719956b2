// Compiles: the SDK without the app's contract types (any collection, plain JSON).
import { createClient, type UntypedDoc } from "./sdk/index.js";

export async function untyped(): Promise<string> {
  const docstore = createClient({ url: "http://localhost" });
  const things = docstore.collection("anything");
  const made: UntypedDoc = await things.create({ name: "x", count: 1 });
  await things.update(made, { inc: { count: 1 } });
  const page = await things.list({ limit: 10 });
  return `${made.id} ${page.items.length} ${String(made.data["name"])}`;
}
