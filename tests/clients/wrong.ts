// Must NOT compile: every line marked `// error` is a type error under `tsc --strict`,
// and no other line is (tests/test_clients.py compares the two).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

const api = createClient<paths>({ baseUrl: "http://localhost" });
const one = { path: { doc_id: "a" } };
type Notes = components["schemas"]["NotesData"];

export async function wrong(): Promise<void> {
  await api.POST("/v1/collections/tasks/documents", {
    body: { title: 42, status: "todo" }, // error: title is a string
  });
  const page = await api.GET("/v1/collections/tasks/documents");
  const count: number = page.data?.items[0]?.data.title ?? 0; // error: title is no number
  // notes has additionalProperties: false, so an unknown field is refused.
  const note: Notes = { title: "x", colour: "red" }; // error: unknown field
  const upd = "/v1/collections/tasks/documents/{doc_id}/update" as const;
  await api.POST(upd, { params: one, body: { inc: { title: 1 } } }); // error: inc on a string
  await api.POST(upd, { params: one, body: { push: { status: "x" } } }); // error: not an array
  await api.POST(upd, { params: one, body: { set: { status: "lost" } } }); // error: not in the enum
  const notes = "/v1/collections/notes/documents/{doc_id}/update" as const;
  await api.POST(notes, { params: one, body: { inc: { likes: 1 } } }); // error: no numeric field
  await api.POST(notes, { params: one, body: { unset: ["title"] } }); // error: title is required
  await api.POST("/v1/collections/tasks/documents/bulk-update", {
    body: { filter: {}, update: { add_to_set: { title: "x" } } }, // error: not an array
  });
  console.log(count, note);
}
