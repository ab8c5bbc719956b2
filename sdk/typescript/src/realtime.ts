// Realtime: a collection's Server-Sent Events over fetch streaming (Node 20 has no
// EventSource, and fetch can send the Authorization header, so no ticket is needed),
// resumed with Last-Event-ID after any drop, with backoff.

import { DocstoreError } from "./errors.js";

export type ChangeEvent<D> =
  | { type: "created"; id: string; document: D }
  | { type: "updated"; id: string; document: D }
  | { type: "deleted"; id: string; document: { id: string } };

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface SubscribeOptions<D> {
  /** The filter language, as for lists: only matching changes arrive. */
  filter?: string | Record<string, unknown>;
  /** Each change, in order, once. */
  onChange: (event: ChangeEvent<D>) => void;
  /** Events may have been missed (a resume point the server no longer has): re-list. */
  onReset?: () => void;
  onState?: (state: ConnectionState) => void;
  /** The server ended the stream for good (signed out, access changed, ...). */
  onEnd?: (reason: string) => void;
  /** Backoff between reconnections, doubling from `minDelayMs` up to `maxDelayMs`. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export interface Subscription {
  close(): void;
  /** The id of the last event seen (where a new subscription would resume). */
  readonly lastEventId: string | undefined;
  /**
   * Resolves once the server has the stream open (its first `ready` event): a change
   * made after that arrives. Rejects if the subscription ends first (refused, closed),
   * with the reason as the message. Awaiting it is optional.
   */
  readonly ready: Promise<void>;
}

/** Reasons after which reconnecting is useless without the app doing something. */
const FINAL = new Set([
  "signed_out",
  "session_ended",
  "revoked",
  "user_disabled",
  "user_deleted",
  "access_changed",
  "forbidden",
  "collection_deleted",
]);

interface Frame {
  event: string;
  id: string | undefined;
  data: string;
}

/** Split a text/event-stream into frames (the WHATWG rules this server's output needs). */
export async function* frames(body: ReadableStream<Uint8Array>): AsyncGenerator<Frame> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "message";
  let id: string | undefined;
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A CR at the very end may be half of a CRLF split across chunks: wait for more.
        if (buffer[newline] === "\r" && newline === buffer.length - 1) break;
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (data.length) yield { event, id, data: data.join("\n") };
          event = "message";
          id = undefined;
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = value;
          else if (field === "data") data.push(value);
          else if (field === "id") id = value;
        }
      }
    }
  } finally {
    // Cancel, not just release: a stream left half-read keeps its connection open.
    await reader.cancel().catch(() => undefined);
  }
}

export function subscribe<D>(
  open: (lastEventId: string | undefined, signal: AbortSignal) => Promise<Response>,
  options: SubscribeOptions<D>,
): Subscription {
  const controller = new AbortController();
  const minDelay = options.minDelayMs ?? 500;
  const maxDelay = options.maxDelayMs ?? 30_000;
  let lastEventId: string | undefined;
  let closed = false;
  // The app's callbacks: one that throws must not end the stream (nor the process).
  const safely = (call: () => void) => {
    try {
      call();
    } catch (error) {
      console.error("docstore: a subscription callback failed", error);
    }
  };
  const state = (next: ConnectionState) => safely(() => options.onState?.(next));
  let isReady: () => void = () => undefined;
  let notReady: (reason: string) => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    isReady = resolve;
    notReady = (reason) => reject(new Error(reason));
  });
  ready.catch(() => undefined); // an app that never awaits it must not see a rejection
  const ended = (reason: string) => {
    closed = true;
    notReady(reason);
    safely(() => options.onEnd?.(reason));
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        controller.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      controller.signal.addEventListener("abort", done, { once: true });
    });

  async function run(): Promise<void> {
    let delay = minDelay;
    state("connecting");
    while (!closed) {
      try {
        const response = await open(lastEventId, controller.signal);
        if (!response.body) {
          // A fetch that cannot stream (React Native's): no use retrying.
          ended("unsupported");
          break;
        }
        state("open");
        for await (const frame of frames(response.body)) {
          // A stream that delivers is healthy: back off from scratch after the next drop
          // (not on any 200: a server that ends streams at once would be hammered).
          if (frame.event !== "ready") delay = minDelay;
          if (frame.event === "ready") {
            isReady();
          } else if (frame.event === "created" || frame.event === "updated") {
            const document = JSON.parse(frame.data) as D & { id: string };
            const type = frame.event;
            safely(() => options.onChange({ type, id: document.id, document }));
          } else if (frame.event === "deleted") {
            const document = JSON.parse(frame.data) as { id: string };
            safely(() => options.onChange({ type: "deleted", id: document.id, document }));
          } else if (frame.event === "reset") {
            safely(() => options.onReset?.());
          } else if (frame.event === "end") {
            const reason = (JSON.parse(frame.data) as { reason: string }).reason;
            if (FINAL.has(reason)) ended(reason);
          }
          // Past this event only once the app has had it.
          if (frame.id) lastEventId = frame.id;
          if (closed) break;
        }
      } catch (error) {
        if (closed || controller.signal.aborted) break;
        if (error instanceof DocstoreError && error.status < 500 && error.status !== 429) {
          // Refused (not signed in, no such collection, a bad filter): not a drop.
          ended(error.code);
          break;
        }
        if (error instanceof DocstoreError && error.retryAfter) {
          delay = Math.max(delay, error.retryAfter * 1000);
        }
      }
      if (closed) break;
      // Dropped (network, restart, expiry): resume where it stopped, after a while.
      state("reconnecting");
      await wait(delay + Math.random() * delay * 0.2);
      delay = Math.min(delay * 2, maxDelay);
    }
    notReady("closed"); // (no effect once ready)
    state("closed");
  }

  run().catch((error: unknown) => console.error("docstore: a subscription failed", error));
  return {
    close() {
      closed = true;
      notReady("closed");
      controller.abort();
    },
    get lastEventId() {
      return lastEventId;
    },
    ready,
  };
}
