// A frontend's use of the generated types with openapi-fetch: every field is typed,
// no casts, no `any`. Run by tests/test_clients.py against a live server:
//   node app.js BASE_URL EMAIL PASSWORD
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Task = components["schemas"]["TasksDocument"];

function fail(message: string): never {
  throw new Error(message);
}

const usage = "usage: node app.js BASE_URL EMAIL PASSWORD";
const baseUrl = process.argv[2] ?? fail(usage);
const email = process.argv[3] ?? fail(usage);
const password = process.argv[4] ?? fail(usage);
const api = createClient<paths>({ baseUrl });

async function main(): Promise<void> {
  const registered = await api.POST("/v1/auth/register", {
    body: { email, password, name: "Typed Frontend" },
  });
  if (!registered.data) fail(`register: ${registered.response.status}`);

  const login = await api.POST("/v1/auth/login", { body: { email, password } });
  if (!login.data) fail(`login: ${login.error?.code}`);
  // A union: an account with two-step sign-in answers a challenge instead of tokens.
  if (!("access_token" in login.data)) fail("login: two-step sign-in is on");
  const authed = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${login.data.access_token}` },
  });

  const created = await authed.POST("/v1/collections/tasks/documents", {
    body: {
      title: "Write the client",
      status: "todo",
      assignee: { name: "Ada" },
      checklist: [{ text: "types", done: true }],
      meta: { priority: 2 },
    },
  });
  if (!created.data) fail(`create: ${created.error?.code}`);
  const task: Task = created.data;
  // Typed reads: a string, an enum, an optional nested object.
  const title: string = task.data.title;
  const status: "todo" | "doing" | "done" = task.data.status;
  const assignee: string | undefined = task.data.assignee?.name;
  const etag = created.response.headers.get("ETag") ?? fail("no ETag");

  const patched = await authed.PATCH("/v1/collections/tasks/documents/{doc_id}", {
    params: { path: { doc_id: task.id }, header: { "if-match": etag } },
    body: { status: "doing", meta: null },
  });
  if (!patched.data) fail(`patch: ${patched.error?.code}`);
  const stale = await authed.PATCH("/v1/collections/tasks/documents/{doc_id}", {
    params: { path: { doc_id: task.id }, header: { "if-match": etag } },
    body: { status: "done" },
  });
  const staleStatus = stale.response.status;

  // Typed operators: `inc` on a numeric path, `push` of a checklist item; a field the
  // open `tasks` schema does not name is allowed (it has no additionalProperties: false).
  const updated = await authed.POST("/v1/collections/tasks/documents/{doc_id}/update", {
    params: { path: { doc_id: task.id } },
    body: {
      inc: { "meta.priority": 2 },
      push: { checklist: { text: "operators" } },
      set: { colour: "teal" },
    },
  });
  if (!updated.data) fail(`update: ${updated.error?.code}`);
  const priority: number | undefined = updated.data.data.meta?.priority;
  const checklist: string[] = (updated.data.data.checklist ?? []).map((item) => item.text);
  const extra: Task["data"] = { title: "open schema", status: "todo", colour: "red" };
  const withExtra = await authed.POST("/v1/collections/tasks/documents", { body: extra });
  if (!withExtra.data) fail(`create with an extra field: ${withExtra.error?.code}`);
  const colour = withExtra.data.data["colour"];

  for (let i = 0; i < 4; i++) {
    const more = await authed.POST("/v1/collections/tasks/documents", {
      body: { title: `task ${i}`, status: "todo" },
    });
    if (!more.data) fail(`create ${i}: ${more.error?.code}`);
  }
  const titles: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await authed.GET("/v1/collections/tasks/documents", {
      params: { query: { limit: 2, cursor } },
    });
    if (!page.data) fail(`list: ${page.error?.code}`);
    for (const item of page.data.items) titles.push(item.data.title);
    cursor = page.data.next_cursor ?? undefined;
    pages += 1;
  } while (cursor !== undefined);

  // A file: bytes go out as they are (bodySerializer: openapi-fetch would JSON-encode
  // them otherwise), typed as bytes by the generator (a string does not compile).
  const sent = new Uint8Array([0, 1, 2, 253, 254, 255, 34, 104, 105, 34]);
  const fileRoute = "/v1/collections/tasks/documents/{doc_id}/files/{filename}" as const;
  const where = { path: { doc_id: task.id, filename: "raw.bin" } };
  const uploaded = await authed.PUT(fileRoute, {
    params: where,
    body: sent,
    bodySerializer: (body) => body,
    headers: { "Content-Type": "application/octet-stream" },
  });
  if (!uploaded.data) fail(`upload: ${uploaded.response.status}`);
  const downloaded = await authed.GET(fileRoute, { params: where, parseAs: "arrayBuffer" });
  if (!downloaded.data) fail(`download: ${downloaded.response.status}`);
  const back = new Uint8Array(downloaded.data);
  const fileRoundTrip = back.length === sent.length && back.every((b, i) => b === sent[i]);

  console.log(
    JSON.stringify({
      fileRoundTrip,
      priority,
      checklist,
      colour,
      fileSize: uploaded.data.size,
      title,
      status,
      assignee,
      patchedStatus: patched.data.data.status,
      patchedVersion: patched.data.version,
      staleStatus,
      pages,
      titles,
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
