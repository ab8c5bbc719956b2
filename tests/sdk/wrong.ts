// Must NOT compile: every line marked `// error` is a type error under `tsc --strict`,
// and no other line is (tests/test_clients.py compares the two).
import { createClient } from "./sdk/index.js";
import type { paths } from "./schema.js";

const docstore = createClient<paths>({ url: "http://localhost" });
const tasks = docstore.collection("tasks");
const notes = docstore.collection("notes");

export async function wrong(): Promise<void> {
  await tasks.create({ title: 42, status: "todo" }); // error: title is a string
  await notes.create({ title: "x", colour: "red" }); // error: unknown field (closed schema)
  await tasks.update("id", { inc: { title: 1 } }); // error: inc on a string
  await tasks.patch("id", { status: "lost" }); // error: not in the enum
  docstore.collection("no_such_collection"); // error: not in the contract
  const task = await tasks.get("id");
  const n: number = task.data.title; // error: title is no number
  console.log(n);
}
