// An app on the SDK, typed by its own contract: no casts, no `any`. Run by
// tests/test_clients.py against a live server:  node app.js BASE_URL EMAIL PASSWORD
import {
  ConflictError,
  DocstoreError,
  createClient,
  memoryStorage,
  type AuthEvent,
  type Doc,
} from "./sdk/index.js";
import type { paths } from "./schema.js";

function fail(message: string): never {
  throw new Error(message);
}

const usage = "usage: node app.js BASE_URL EMAIL PASSWORD";
const url = process.argv[2] ?? fail(usage);
const email = process.argv[3] ?? fail(usage);
const password = process.argv[4] ?? fail(usage);

// Count what goes over the wire, to prove refreshes are single-flight.
let refreshes = 0;
const counting: typeof fetch = (input, init) => {
  if (String(input).endsWith("/v1/auth/refresh")) refreshes += 1;
  return fetch(input, init);
};

async function main(): Promise<void> {
  const storage = memoryStorage();
  const docstore = createClient<paths>({ url, storage, fetch: counting });
  const events: AuthEvent[] = [];
  docstore.auth.onAuthStateChange((event) => events.push(event));

  await docstore.auth.signUp({ email, password, name: "SDK app" });
  const signed = await docstore.auth.signIn({ email, password });
  if (!("session" in signed)) fail("two-step sign-in was not expected");

  const tasks = docstore.collection("tasks");
  const task: Doc<paths, "tasks"> = await tasks.create({
    title: "Ship the SDK",
    status: "todo",
    checklist: [{ text: "types", done: true }],
    meta: { priority: 2 },
  });
  const title: string = task.data.title;
  const status: "todo" | "doing" | "done" = task.data.status;

  // Optimistic concurrency: writing with the document sends If-Match for its version.
  const doing = await tasks.patch(task, { status: "doing" });
  let conflict = "none";
  try {
    await tasks.patch(task, { status: "done" }); // `task` is the old version now
  } catch (error) {
    if (error instanceof ConflictError) conflict = error.code;
  }
  const bumped = await tasks.update(doing, { inc: { "meta.priority": 1 } });
  const priority: number | undefined = bumped.data.meta?.priority;
  const patched = await tasks.jsonPatch(bumped, [
    { op: "add", path: "/checklist/-", value: { text: "docs" } },
  ]);
  const items: string[] = (patched.data.checklist ?? []).map((item) => item.text);

  const bulk = await tasks.bulkCreate({
    documents: Array.from({ length: 5 }, (_, i) => ({ title: `extra ${i}`, status: "todo" })),
  });
  const moved = await tasks.bulkUpdate({
    filter: { "data.title": { $regex: "^extra" } },
    update: { set: { status: "done" } },
  });
  const batch = await docstore.batch({
    operations: [{ op: "update", collection: "tasks", id: task.id, update: { set: { due: "2027-01-01T00:00:00Z" } } }],
  });
  const titles: string[] = [];
  for await (const doc of tasks.iterate({ limit: 2, sort: "created_at" })) {
    titles.push(doc.data.title);
  }
  const done = await tasks.count('{"data.status": "done"}');

  // The app restarts with a stored token the server refuses (revoked, or the clock was
  // off): ten calls at once get 401s and refresh once.
  const session = (await storage.get()) ?? fail("no session");
  await storage.set({ ...session, access_token: "not-a-valid-token" });
  const restarted = createClient<paths>({ url, storage, fetch: counting });
  restarted.auth.onAuthStateChange((event) => events.push(event));
  const again = await Promise.all(
    Array.from({ length: 10 }, () => restarted.collection("tasks").get(task.id)),
  );

  let missing = "none";
  try {
    await tasks.get("no-such-document");
  } catch (error) {
    if (error instanceof DocstoreError) missing = `${error.status} ${error.code}`;
  }
  await tasks.delete(task.id); // by id: no If-Match (the batch changed it since)
  await restarted.auth.signOut();
  let afterSignOut = "none";
  try {
    await restarted.collection("tasks").get(task.id);
  } catch (error) {
    if (error instanceof DocstoreError) afterSignOut = `${error.status} ${error.code}`;
  }

  console.log(
    JSON.stringify({
      title,
      status,
      doing: doing.data.status,
      conflict,
      priority,
      items,
      titles: [...titles].sort(), // bulk-created ones share a created_at
      done,
      bulk: bulk.results.length,
      moved: moved.modified,
      batch: batch.results.length,
      refreshes,
      sameTask: again.every((doc) => doc.id === task.id),
      missing,
      afterSignOut,
      events,
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
