// Realtime and files through the SDK, across a server restart. Run by
// tests/test_clients.py:  node realtime.js BASE_URL EMAIL PASSWORD
// It prints `open` once subscribed and its first change has arrived; the test then
// restarts the server and creates a note while the stream is down; the SDK must
// reconnect with Last-Event-ID and deliver it. Then a file goes up and comes back.
import { createClient, type ChangeEvent, type ConnectionState, type Doc } from "./sdk/index.js";
import type { paths } from "./schema.js";

function fail(message: string): never {
  throw new Error(message);
}

const usage = "usage: node realtime.js BASE_URL EMAIL PASSWORD";
const url = process.argv[2] ?? fail(usage);
const email = process.argv[3] ?? fail(usage);
const password = process.argv[4] ?? fail(usage);

type Note = Doc<paths, "notes">;

async function main(): Promise<void> {
  const docstore = createClient<paths>({ url });
  const signed = await docstore.auth.signIn({ email, password });
  if (!("session" in signed)) fail("two-step sign-in was not expected");
  const notes = docstore.collection("notes");

  const seen: string[] = [];
  const states: ConnectionState[] = [];
  let resets = 0;
  let wanted: { title: string; resolve: (note: Note) => void } | undefined;
  const arrival = (title: string) =>
    new Promise<Note>((resolve) => {
      wanted = { title, resolve };
    });
  // A stream starts from when it opens: the first note is made once it is ready.
  const subscription = notes.subscribe({
    minDelayMs: 200,
    maxDelayMs: 1000,
    onState: (state) => {
      states.push(state);
    },
    onReset: () => {
      resets += 1;
    },
    onChange: (event: ChangeEvent<Note>) => {
      if (event.type === "deleted") return;
      const title: string = event.document.data.title;
      seen.push(`${event.type} ${title}`);
      if (wanted && wanted.title === title) wanted.resolve(event.document);
    },
  });

  await subscription.ready;
  const first = arrival("before the restart");
  await notes.create({ title: "before the restart" });
  await first;
  console.log("open");

  // The test restarts the server now and creates "during the restart" meanwhile.
  const during = await arrival("during the restart");

  const bytes = new Uint8Array(256 * 1024).map((_, i) => (i * 7) % 251);
  const progress: number[] = [];
  const files = notes.files(during);
  const stored = await files.upload("data.bin", bytes, {
    onProgress: (sent) => progress.push(sent),
  });
  const back = await files.download("data.bin");
  const listed = (await files.list()).map((f) => [f.name, f.size, f.sha256.length]);
  const link = await files.link("data.bin", 60);
  const viaLink = new Uint8Array(await (await fetch(new URL(link.url, url))).arrayBuffer());
  subscription.close();
  // Closed before the server had it open: `ready` says so instead of waiting forever.
  const early = notes.subscribe({ onChange: () => undefined });
  early.close();
  const earlyReady = await early.ready.then(
    () => "resolved",
    (error: Error) => `rejected: ${error.message}`,
  );

  console.log(
    JSON.stringify({
      seen,
      reconnected: states.includes("reconnecting"),
      resets,
      size: stored.size,
      listed,
      sameBytes: back.length === bytes.length && back.every((b, i) => b === bytes[i]),
      linkBytes: viaLink.length === bytes.length && viaLink.every((b, i) => b === bytes[i]),
      progressEnd: progress[progress.length - 1],
      earlyReady,
    }),
  );
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
