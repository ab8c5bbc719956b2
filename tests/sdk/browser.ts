// The SDK in a browser page (headless Chromium, tests/test_clients.py): loaded as plain ES
// modules (it has no dependencies), talking to the API on another origin (CORS).
import {
  createClient,
  type Collection,
  webStorage,
  type AuthEvent,
  type ChangeEvent,
  type Doc,
  type Session,
  type Subscription,
} from "./sdk/index.js";
import type { paths } from "./schema.js";

type Note = Doc<paths, "notes">;

const titles: string[] = [];
const waiting = new Map<string, () => void>();
const events: AuthEvent[] = [];
let live: Subscription | undefined;
const docstore = { client: undefined as ReturnType<typeof createClient<paths>> | undefined };

function client() {
  if (!docstore.client) throw new Error("start first");
  return docstore.client;
}

let opened: () => void = () => undefined;

/** A subscription, and a promise of its stream being open: a note created before that
 * would not be on it (a stream starts from when it opens), so the test waits for it. */
function subscribeTo(notes: Collection<paths, "notes">): [Subscription, Promise<void>] {
  const open = new Promise<void>((resolve) => (opened = resolve));
  const subscription = notes.subscribe({
    minDelayMs: 200,
    maxDelayMs: 1000,
    onState: (state) => {
      if (state === "open") opened();
    },
    onChange: (event: ChangeEvent<Note>) => {
      if (event.type !== "created") return;
      titles.push(event.document.data.title);
      waiting.get(event.document.data.title)?.();
    },
  });
  return [subscription, open];
}

/** Sign in, subscribe, write, and move a file through; the subscription stays open. */
export async function start(url: string, email: string, password: string) {
  const sdk = createClient<paths>({ url, storage: webStorage("docstore.test") });
  docstore.client = sdk;
  sdk.auth.onAuthStateChange((event) => events.push(event));
  const signed = await sdk.auth.signIn({ email, password });
  if (!("session" in signed)) throw new Error("two-step sign-in was not expected");
  const stored = localStorage.getItem("docstore.test") !== null;

  [live] = subscribeTo(sdk.collection("notes"));
  // The app is opened again later: its stored access token has expired meanwhile, so
  // the first calls (at once) refresh it, once, before going out.
  const kept = JSON.parse(localStorage.getItem("docstore.test") ?? "null") as Session;
  localStorage.setItem(
    "docstore.test",
    JSON.stringify({ ...kept, expires_at: Date.now() - 1000, refresh_at: Date.now() - 1000 }),
  );
  live.close();
  const reopened = createClient<paths>({ url, storage: webStorage("docstore.test") });
  reopened.auth.onAuthStateChange((event) => events.push(event));
  docstore.client = reopened;
  const notes = reopened.collection("notes");
  let open: Promise<void>;
  [live, open] = subscribeTo(notes);
  await open;
  const [made] = await Promise.all([
    notes.create({ title: "from the browser", tags: ["chromium"] }),
    notes.count(),
    notes.count(),
  ]);
  await arrival("from the browser");
  const renamed = await notes.patch(made, { title: "renamed in the browser" });

  const bytes = new Uint8Array(100_000).map((_, i) => (i * 13) % 256);
  const files = notes.files(renamed);
  let sent = 0;
  await files.upload("photo.bin", new Blob([bytes], { type: "application/octet-stream" }), {
    onProgress: (bytesSent) => {
      sent = bytesSent;
    },
  });
  const back = await files.download("photo.bin");
  return {
    stored,
    renamed: renamed.data.title,
    sameBytes: back.length === bytes.length && back.every((b, i) => b === bytes[i]),
    progressEnd: sent,
  };
}

/** Resolves once a created note with this title has arrived on the subscription. */
export function arrival(title: string): Promise<void> {
  if (titles.includes(title)) return Promise.resolve();
  return new Promise((resolve) => waiting.set(title, resolve));
}

export async function finish() {
  live?.close();
  await client().auth.signOut();
  return {
    titles,
    refreshed: events.includes("TOKEN_REFRESHED"),
    signedOut: localStorage.getItem("docstore.test") === null,
  };
}
