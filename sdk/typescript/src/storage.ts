// Where a signed-in session is kept between page loads or app starts.

export interface Session {
  access_token: string;
  refresh_token: string;
  /** Milliseconds since the epoch when the access token expires. */
  expires_at: number;
  /** When the client refreshes it (before `expires_at`). */
  refresh_at?: number;
}

/** Any key-value store: localStorage, AsyncStorage (React Native), a file, memory. */
export interface SessionStorage {
  get(): Session | null | Promise<Session | null>;
  set(session: Session | null): void | Promise<void>;
}

export function memoryStorage(): SessionStorage {
  let kept: Session | null = null;
  return {
    get: () => kept,
    set: (session) => {
      kept = session;
    },
  };
}

/** Browser storage (`localStorage` by default) under `key`. */
export function webStorage(
  key = "docstore.session",
  store: Pick<Storage, "getItem" | "setItem" | "removeItem"> = globalThis.localStorage,
): SessionStorage {
  return {
    get() {
      const raw = store.getItem(key);
      if (!raw) return null;
      try {
        return JSON.parse(raw) as Session;
      } catch {
        return null;
      }
    },
    set(session) {
      if (session) store.setItem(key, JSON.stringify(session));
      else store.removeItem(key);
    },
  };
}
