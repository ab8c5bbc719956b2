// The Docstore client: a session that refreshes itself, and typed collections.

import { ConflictError, DocstoreError, problemOf } from "./errors.js";
import { memoryStorage, type Session, type SessionStorage } from "./storage.js";
import { subscribe, type SubscribeOptions, type Subscription } from "./realtime.js";
import type {
  Batch,
  BatchResult,
  BulkChanged,
  BulkCreate,
  BulkCreated,
  BulkDelete,
  BulkUpdate,
  CollectionName,
  Doc,
  JsonPatch,
  ListQuery,
  MergePatch,
  NewData,
  Page,
  UpdateOps,
} from "./types.js";

export interface ClientOptions {
  /** The API's base URL, e.g. `https://api.example.com`. */
  url: string;
  /** Where the session is kept (default: memory; `webStorage()` in browsers). */
  storage?: SessionStorage;
  /** Refresh this many seconds before the access token expires (default 30). */
  refreshMarginSeconds?: number;
  /** A fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

export type AuthEvent = "SIGNED_IN" | "SIGNED_OUT" | "TOKEN_REFRESHED";
export type AuthListener = (event: AuthEvent, session: Session | null) => void;

/** A second factor is needed: pass `mfaToken` and a code to `auth.verify`. */
export interface MfaChallenge {
  mfaToken: string;
  methods: ("totp" | "recovery_code" | "passkey")[];
  expiresIn: number;
}
export type SignInResult = { session: Session } | { mfa: MfaChallenge };

interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}
interface MfaAnswer {
  mfa_required: true;
  mfa_token: string;
  methods: MfaChallenge["methods"];
  expires_in: number;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: BodyInit;
  contentType?: string;
  headers?: Record<string, string>;
  /** Send the session's access token (default true when signed in). */
  auth?: boolean;
  signal?: AbortSignal;
}

const TOKEN_ERRORS = new Set(["token_expired", "token_invalid"]);

function isStream(body: unknown): body is ReadableStream<Uint8Array> {
  return typeof ReadableStream !== "undefined" && body instanceof ReadableStream;
}

/** In a browser (where fetch streams request bodies only over HTTP/2). */
const inBrowser = () => typeof XMLHttpRequest !== "undefined";

export class Auth {
  private refreshing: Promise<Session> | undefined;
  private listeners = new Set<AuthListener>();
  // The session as this client knows it (the storage is a copy, written best-effort);
  // undefined until read from the storage.
  private current: Session | null | undefined;
  // Bumped by every sign-in and sign-out: a refresh that started before one is stale.
  private generation = 0;

  constructor(
    private readonly http: Http,
    private readonly storage: SessionStorage,
    private readonly marginMs: number,
  ) {}

  /** Create an account (201), or 202 when the server confirms addresses by mail first. */
  async signUp(account: { email: string; password: string; name: string }): Promise<void> {
    await this.http.send("POST", "/v1/auth/register", { json: account, auth: false });
  }

  async signIn(credentials: { email: string; password: string }): Promise<SignInResult> {
    const answer = (await (
      await this.http.send("POST", "/v1/auth/login", { json: credentials, auth: false })
    ).json()) as TokenAnswer | MfaAnswer;
    if ("mfa_required" in answer) {
      return {
        mfa: {
          mfaToken: answer.mfa_token,
          methods: answer.methods,
          expiresIn: answer.expires_in,
        },
      };
    }
    return { session: await this.signedIn(answer) };
  }

  /** Finish a two-step sign-in with the app's code or a recovery code. */
  async verify(mfaToken: string, code: { code: string } | { recovery_code: string }) {
    const response = await this.http.send("POST", "/v1/auth/mfa/verify", {
      json: { mfa_token: mfaToken, ...code },
      auth: false,
    });
    return this.signedIn((await response.json()) as TokenAnswer);
  }

  /** Sign in with tokens obtained elsewhere (a sign-in link, social sign-in's exchange). */
  async setSession(tokens: TokenAnswer): Promise<Session> {
    return this.signedIn(tokens);
  }

  /** End the session here and on the server (offline: here, and the server's expires). */
  async signOut(): Promise<void> {
    // A refresh in flight would otherwise store its new tokens after this.
    await this.refreshing?.catch(() => undefined);
    const session = await this.load();
    this.generation += 1;
    try {
      if (session) {
        await this.http.send("POST", "/v1/auth/logout", {
          json: { refresh_token: session.refresh_token },
          auth: false,
        });
      }
    } catch {
      // Signed out here anyway: a session the server no longer knows is gone, and one
      // it does know expires there (refresh tokens are revocable with logout-all).
    } finally {
      await this.persist(null);
      this.emit("SIGNED_OUT", null);
    }
  }

  async session(): Promise<Session | null> {
    return this.load();
  }

  /** Called on every sign-in, refresh and sign-out; returns the unsubscribe function. */
  onAuthStateChange(listener: AuthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * New tokens for the stored refresh token. Single-flight: however many requests need
   * a refresh at once, one is sent and all wait for it; across browser tabs sharing the
   * storage, a Web Lock makes one tab refresh and the others adopt its tokens (the
   * server revokes a session whose refresh token is presented twice).
   */
  refresh(): Promise<Session> {
    this.refreshing ??= this.exclusively(() => this.doRefresh()).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** The access token to send now, refreshed first when it is about to expire. */
  async accessToken(): Promise<string | null> {
    const session = await this.load();
    if (!session) return null;
    if (Date.now() < (session.refresh_at ?? session.expires_at - this.marginMs)) {
      return session.access_token;
    }
    return (await this.refresh()).access_token;
  }

  private async load(): Promise<Session | null> {
    if (this.current === undefined) {
      try {
        this.current = (await this.storage.get()) ?? null;
      } catch {
        this.current = null;
      }
    }
    return this.current;
  }

  private async exclusively<T>(work: () => Promise<T>): Promise<T> {
    const locks = (globalThis.navigator as { locks?: LockManager } | undefined)?.locks;
    if (!locks) return work();
    return locks.request("docstore.refresh", work) as Promise<T>;
  }

  private async doRefresh(): Promise<Session> {
    const generation = this.generation;
    let session = await this.load();
    // Another tab may have refreshed meanwhile: take its tokens from the shared storage.
    try {
      const shared = await this.storage.get();
      if (shared && session && shared.refresh_token !== session.refresh_token) {
        this.current = session = shared;
        if (Date.now() < (shared.refresh_at ?? shared.expires_at - this.marginMs)) {
          return shared;
        }
      }
    } catch {
      // The storage is unreadable: go on with what this client holds.
    }
    if (!session) throw new Error("Not signed in");
    const sent = session.refresh_token;
    let answer: TokenAnswer;
    try {
      const response = await this.http.send("POST", "/v1/auth/refresh", {
        json: { refresh_token: sent },
        auth: false,
      });
      answer = (await response.json()) as TokenAnswer;
    } catch (error) {
      const stillOurs = this.generation === generation && this.current?.refresh_token === sent;
      if (error instanceof DocstoreError && error.status === 401 && stillOurs) {
        // The session ended (signed out elsewhere, reuse detected, expired).
        await this.persist(null);
        this.emit("SIGNED_OUT", null);
      }
      throw error;
    }
    const fresh = this.sessionOf(answer);
    if (this.generation !== generation) return fresh; // signed out or in anew meanwhile
    await this.persist(fresh);
    this.emit("TOKEN_REFRESHED", fresh);
    return fresh;
  }

  private sessionOf(tokens: TokenAnswer): Session {
    const lifetime = tokens.expires_in * 1000;
    const now = Date.now();
    return {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_at: now + lifetime,
      // The margin before expiry, but never more than half the lifetime (short-lived
      // tokens would otherwise be refreshed before every request).
      refresh_at: now + Math.max(lifetime - this.marginMs, lifetime / 2),
    };
  }

  private async signedIn(tokens: TokenAnswer): Promise<Session> {
    await this.refreshing?.catch(() => undefined);
    this.generation += 1;
    const session = this.sessionOf(tokens);
    await this.persist(session);
    this.emit("SIGNED_IN", session);
    return session;
  }

  private async persist(session: Session | null): Promise<void> {
    this.current = session;
    try {
      await this.storage.set(session);
    } catch (error) {
      // Kept in memory all the same: losing a rotated refresh token would end the session.
      console.warn("docstore: the session could not be stored", error);
    }
  }

  private emit(event: AuthEvent, session: Session | null): void {
    for (const listener of this.listeners) {
      try {
        listener(event, session);
      } catch (error) {
        console.error("docstore: an onAuthStateChange listener failed", error);
      }
    }
  }
}

/** HTTP with the session: the token is attached, refreshed on a 401 once, problems thrown. */
export class Http {
  auth!: Auth;

  constructor(
    private readonly base: string,
    private readonly fetcher: typeof fetch,
  ) {}

  async send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const useAuth = options.auth ?? true;
    const token = useAuth ? await this.auth.accessToken() : null;
    let response = await this.once(method, path, options, token);
    // A streamed body cannot be sent twice: no retry for it (the token was fresh).
    if (response.status === 401 && token !== null && !isStream(options.body)) {
      const problem = await problemOf(response.clone());
      if (TOKEN_ERRORS.has(problem.code)) {
        // Expired or revoked meanwhile (a clock off, a password change elsewhere).
        const fresh = await this.auth.refresh();
        response = await this.once(method, path, options, fresh.access_token);
      }
    }
    if (!response.ok) throw await problemOf(response);
    return response;
  }

  /** A PUT through XMLHttpRequest, for upload progress in browsers. */
  async xhrPut(
    path: string,
    body: XMLHttpRequestBodyInit,
    contentType: string,
    progress: (sent: number, total?: number) => void,
  ): Promise<StoredFile> {
    const token = await this.auth.accessToken();
    const response = await new Promise<Response>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", this.base.replace(/\/$/, "") + path);
      xhr.setRequestHeader("Content-Type", contentType);
      xhr.setRequestHeader("Accept", "application/json");
      if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.upload.onprogress = (event) =>
        progress(event.loaded, event.lengthComputable ? event.total : undefined);
      xhr.onload = () =>
        resolve(
          new Response(xhr.responseText, {
            status: xhr.status,
            headers: { "Content-Type": xhr.getResponseHeader("Content-Type") ?? "" },
          }),
        );
      xhr.onerror = () => reject(new TypeError("upload failed: network error"));
      xhr.send(body);
    });
    if (!response.ok) throw await problemOf(response);
    return (await response.json()) as StoredFile;
  }

  private once(
    method: string,
    path: string,
    options: RequestOptions,
    token: string | null,
  ): Promise<Response> {
    // The query by hand: React Native's URLSearchParams cannot set.
    const query = Object.entries(options.query ?? {})
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`)
      .join("&");
    const url = this.base.replace(/\/$/, "") + path + (query ? `?${query}` : "");
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (token) headers["Authorization"] = `Bearer ${token}`;
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["Content-Type"] = options.contentType ?? "application/json";
    } else if (options.contentType) {
      headers["Content-Type"] = options.contentType;
    }
    const init: RequestInit & { duplex?: "half" } = { method, headers, body };
    if (options.signal) init.signal = options.signal;
    // A streamed request body (a ReadableStream) needs half-duplex in fetch.
    if (isStream(body)) init.duplex = "half";
    return this.fetcher(url, init);
  }
}

/** A stored document, or just its id. With the document, writes send `If-Match` for its
 * version, so a change made meanwhile is a `ConflictError` instead of being overwritten. */
type Target = string | { id: string; version: number };

function targetOf(target: Target): { id: string; ifMatch: Record<string, string> } {
  return typeof target === "string"
    ? { id: target, ifMatch: {} }
    : { id: target.id, ifMatch: { "If-Match": `"${target.version}"` } };
}

export class Collection<P, N extends string> {
  private readonly path: string;

  constructor(
    private readonly http: Http,
    readonly name: N,
  ) {
    this.path = `/v1/collections/${encodeURIComponent(name)}/documents`;
  }

  private docPath(id: string): string {
    return `${this.path}/${encodeURIComponent(id)}`;
  }

  private async json<T>(response: Promise<Response>): Promise<T> {
    return (await (await response).json()) as T;
  }

  /** One page: `{items, next_cursor}`. */
  list(query: ListQuery<P, N> = {} as ListQuery<P, N>): Promise<Page<P, N>> {
    return this.json(
      this.http.send("GET", this.path, { query: query as RequestOptions["query"] }),
    );
  }

  /** Every document the query matches, page after page. */
  async *iterate(query: ListQuery<P, N> = {} as ListQuery<P, N>): AsyncGenerator<Doc<P, N>> {
    let cursor: string | undefined;
    do {
      const page = (await this.list({ ...query, cursor } as ListQuery<P, N>)) as {
        items: Doc<P, N>[];
        next_cursor?: string | null;
      };
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  get(id: string): Promise<Doc<P, N>> {
    return this.json(this.http.send("GET", this.docPath(id)));
  }

  /** Create one; `idempotencyKey` makes a retried create return the first answer. */
  create(
    data: NewData<P, N>,
    options: { team?: string; idempotencyKey?: string } = {},
  ): Promise<Doc<P, N>> {
    return this.json(
      this.http.send("POST", this.path, {
        json: data,
        query: { team: options.team },
        headers: options.idempotencyKey ? { "Idempotency-Key": options.idempotencyKey } : {},
      }),
    );
  }

  /** Replace `data` whole (or create with this id). */
  replace(target: Target, data: NewData<P, N>): Promise<Doc<P, N>> {
    const { id, ifMatch } = targetOf(target);
    return this.json(this.http.send("PUT", this.docPath(id), { json: data, headers: ifMatch }));
  }

  /** A merge patch: the fields given change, `null` removes one. */
  patch(target: Target, changes: MergePatch<P, N>): Promise<Doc<P, N>> {
    const { id, ifMatch } = targetOf(target);
    return this.json(
      this.http.send("PATCH", this.docPath(id), {
        json: changes,
        contentType: "application/merge-patch+json",
        headers: ifMatch,
      }),
    );
  }

  /** A JSON Patch (RFC 6902), applied atomically. */
  jsonPatch(target: Target, operations: JsonPatch<P, N>): Promise<Doc<P, N>> {
    const { id, ifMatch } = targetOf(target);
    return this.json(
      this.http.send("PATCH", this.docPath(id), {
        json: operations,
        contentType: "application/json-patch+json",
        headers: ifMatch,
      }),
    );
  }

  /** Update operators, typed per field: `{inc: {"stats.views": 1}, push: {...}}`. */
  update(target: Target, operators: UpdateOps<P, N>): Promise<Doc<P, N>> {
    const { id, ifMatch } = targetOf(target);
    return this.json(
      this.http.send("POST", `${this.docPath(id)}/update`, { json: operators, headers: ifMatch }),
    );
  }

  async delete(target: Target): Promise<void> {
    const { id, ifMatch } = targetOf(target);
    await this.http.send("DELETE", this.docPath(id), { headers: ifMatch });
  }

  /**
   * Changes to the documents the caller may read, as they happen: resumed with
   * `Last-Event-ID` after a drop or a server restart (nothing lost or repeated), with
   * backoff; `onReset` when the server could not resume (re-list then).
   */
  subscribe(options: SubscribeOptions<Doc<P, N>>): Subscription {
    const filter =
      typeof options.filter === "string" || options.filter === undefined
        ? options.filter
        : JSON.stringify(options.filter);
    return subscribe<Doc<P, N>>(
      (lastEventId, signal) =>
        this.http.send("GET", `/v1/collections/${encodeURIComponent(this.name)}/events`, {
          query: { filter },
          headers: {
            Accept: "text/event-stream",
            ...(lastEventId ? { "Last-Event-ID": lastEventId } : {}),
          },
          signal,
        }),
      options,
    );
  }

  /** A document's files: upload, download, list, remove, and links that need no token. */
  files(target: string | { id: string }): Files {
    const id = typeof target === "string" ? target : target.id;
    return new Files(this.http, `${this.docPath(id)}/files`);
  }

  /** Create many at once; each item succeeds or fails on its own. */
  bulkCreate(items: BulkCreate<P, N>): Promise<BulkCreated<P, N>> {
    return this.json(this.http.send("POST", `${this.path}/bulk`, { json: items }));
  }

  /** Update every document the filter matches that the caller may change. */
  bulkUpdate(change: BulkUpdate<P, N>): Promise<BulkChanged<P, N>> {
    return this.json(this.http.send("POST", `${this.path}/bulk-update`, { json: change }));
  }

  bulkDelete(change: BulkDelete<P, N>): Promise<BulkChanged<P, N>> {
    return this.json(this.http.send("POST", `${this.path}/bulk-delete`, { json: change }));
  }

  /** How many documents the filter matches (that the caller may read). */
  async count(filter?: string): Promise<number> {
    const answer = await this.json<{ count: number }>(
      this.http.send("GET", `${this.path}/count`, { query: { filter } }),
    );
    return answer.count;
  }
}

export type Upload = Blob | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array>;

/** A stored file as the API describes it (FileOut). */
export interface StoredFile {
  name: string;
  content_type: string;
  size: number;
  /** Hex SHA-256 of the content; also its ETag. */
  sha256: string;
  created_at: string;
}

export class Files {
  constructor(
    private readonly http: Http,
    private readonly path: string,
  ) {}

  private filePath(filename: string): string {
    return `${this.path}/${encodeURIComponent(filename)}`;
  }

  /** Store a file (any type; streamed). `onProgress(sent, total)` counts bytes sent. */
  async upload(
    filename: string,
    content: Upload,
    options: { contentType?: string; onProgress?: (sent: number, total?: number) => void } = {},
  ): Promise<StoredFile> {
    const type =
      options.contentType ??
      (typeof Blob !== "undefined" && content instanceof Blob && content.type
        ? content.type
        : "application/octet-stream");
    let body: BodyInit = content instanceof Uint8Array ? (content as Uint8Array<ArrayBuffer>) : content;
    if (inBrowser() && isStream(body)) {
      // Browsers stream fetch bodies only over HTTP/2 (some send "[object ReadableStream]"
      // instead): gather it first.
      body = await new Response(body).blob();
    }
    const progress = options.onProgress;
    if (progress && inBrowser()) {
      // XMLHttpRequest reports upload progress.
      return this.http.xhrPut(this.filePath(filename), body as XMLHttpRequestBodyInit, type, progress);
    }
    if (progress) {
      const blob =
        body instanceof Blob
          ? body
          : body instanceof ArrayBuffer || body instanceof Uint8Array
            ? new Blob([body as ArrayBuffer | Uint8Array<ArrayBuffer>])
            : null;
      const source = blob?.stream() ?? null;
      const total = blob?.size;
      const stream = source ?? (body as ReadableStream<Uint8Array>);
      let sent = 0;
      body = stream.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            sent += chunk.byteLength;
            progress(sent, total);
            controller.enqueue(chunk);
          },
        }),
      );
    }
    const response = await this.http.send("PUT", this.filePath(filename), {
      body,
      contentType: type,
    });
    return (await response.json()) as StoredFile;
  }

  /** The file's bytes. */
  async download(filename: string): Promise<Uint8Array> {
    const response = await this.http.send("GET", this.filePath(filename), {
      headers: { Accept: "*/*" },
    });
    return new Uint8Array(await response.arrayBuffer());
  }

  async list(): Promise<StoredFile[]> {
    const response = await this.http.send("GET", this.path);
    return ((await response.json()) as { items: StoredFile[] }).items;
  }

  async remove(filename: string): Promise<void> {
    await this.http.send("DELETE", this.filePath(filename));
  }

  /** A signed URL (path and query) that works without a token, for `<img src>`. */
  async link(filename: string, expiresIn = 3600): Promise<{ url: string; expires_at: string }> {
    const response = await this.http.send("POST", `${this.filePath(filename)}/link`, {
      json: { expires_in: expiresIn },
    });
    return (await response.json()) as { url: string; expires_at: string };
  }
}

export class DocstoreClient<P> {
  readonly auth: Auth;
  private readonly http: Http;

  constructor(options: ClientOptions) {
    this.http = new Http(options.url, options.fetch ?? globalThis.fetch.bind(globalThis));
    this.auth = new Auth(
      this.http,
      options.storage ?? memoryStorage(),
      (options.refreshMarginSeconds ?? 30) * 1000,
    );
    this.http.auth = this.auth;
  }

  /** A collection, typed by its name in the contract. */
  collection<N extends CollectionName<P>>(name: N): Collection<P, N> {
    return new Collection<P, N>(this.http, name);
  }

  /** Up to 100 writes across collections in one transaction: all or nothing. */
  async batch(operations: Batch<P>): Promise<BatchResult<P>> {
    const response = await this.http.send("POST", "/v1/batch", { json: operations });
    return (await response.json()) as BatchResult<P>;
  }

  /** Any route, with the session attached (problems thrown as DocstoreError). */
  request(method: string, path: string, options?: RequestOptions): Promise<Response> {
    return this.http.send(method, path, options);
  }
}

export function createClient<P>(options: ClientOptions): DocstoreClient<P> {
  return new DocstoreClient<P>(options);
}

export { ConflictError, DocstoreError };
