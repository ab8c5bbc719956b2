// The console's view of the API: the SDK's client (session, refresh, collections, realtime,
// files) and typed calls for the admin routes, their types generated from openapi.json
// (contract.d.ts, by `make console`). Only public routes: a script can do all of this.

import {
  createClient,
  webStorage,
  type RequestOptions,
} from "../../sdk/typescript/src/index.js";
import type { components } from "./contract.js";

type Schemas = components["schemas"];
export type User = Schemas["UserOut"];
export type UserPage = Schemas["UserPage"];
export type Collection = Schemas["CollectionOut"];
export type CollectionIn = Schemas["CollectionIn"];
export type CollectionPatch = Schemas["CollectionPatch"];
export type SchemaCheck = Schemas["SchemaCheckOut"];
export type SessionRow = Schemas["SessionOut"];
export type ApiKeyRow = Schemas["ApiKeyOut"];
export type Stats = Schemas["StatsOut"];
export type MailMessage = Schemas["MailMessageOut"];
export type MailPage = Schemas["MailPage"];
export type MailStatus = MailMessage["status"];
export type Role = Schemas["Role"];
export type ReadAccess = Schemas["ReadAccess"];
export type WriteAccess = Schemas["WriteAccess"];
export type UserChange = Schemas["UserAdminUpdate"];

/** The SDK's client, untyped by collection (the console shows whatever is declared). The
 * admin's session lives in this tab's sessionStorage: it survives a reload, not the tab,
 * and no other tab or page of the origin (/docs) shares it. */
export const client = createClient<unknown>({
  url: location.origin,
  storage: webStorage("docstore.console.session", sessionStorage),
});

async function call<T>(method: string, path: string, options?: RequestOptions): Promise<T> {
  const response = await client.request(method, path, options);
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
}

const id = encodeURIComponent;

export const api = {
  me: () => call<User>("GET", "/v1/users/me"),
  stats: () => call<Stats>("GET", "/v1/admin/stats"),

  collections: async () => (await call<{ items: Collection[] }>("GET", "/v1/collections")).items,
  collection: (name: string) => call<Collection>("GET", `/v1/collections/${id(name)}`),
  declare: (body: CollectionIn) => call<Collection>("POST", "/v1/collections", { json: body }),
  change: (name: string, body: CollectionPatch) =>
    call<Collection>("PATCH", `/v1/collections/${id(name)}`, { json: body }),
  dropCollection: (name: string) => call<void>("DELETE", `/v1/collections/${id(name)}`),
  checkSchema: (name: string, schema: Record<string, unknown>) =>
    call<SchemaCheck>("POST", `/v1/collections/${id(name)}/schema-check`, { json: { schema } }),

  users: (q: string, cursor?: string) =>
    call<UserPage>("GET", "/v1/users", { query: { q: q || undefined, cursor, limit: 20 } }),
  user: (userId: string) => call<User>("GET", `/v1/users/${id(userId)}`),
  changeUser: (userId: string, body: UserChange) =>
    call<User>("PATCH", `/v1/users/${id(userId)}`, { json: body }),
  sessions: async (userId: string) =>
    (await call<{ items: SessionRow[] }>("GET", `/v1/users/${id(userId)}/sessions`)).items,
  endSession: (userId: string, sessionId: string) =>
    call<void>("DELETE", `/v1/users/${id(userId)}/sessions/${id(sessionId)}`),
  signOutEverywhere: (userId: string) =>
    call<void>("POST", `/v1/users/${id(userId)}/logout-all`),
  apiKeys: async (userId: string) =>
    (await call<{ items: ApiKeyRow[] }>("GET", `/v1/users/${id(userId)}/api-keys`)).items,
  revokeKey: (userId: string, keyId: string) =>
    call<void>("DELETE", `/v1/users/${id(userId)}/api-keys/${id(keyId)}`),

  mail: (status: MailStatus | "", cursor?: string) =>
    call<MailPage>("GET", "/v1/admin/mail", {
      query: { status: status || undefined, cursor, limit: 25 },
    }),
  retryMail: (messageId: string) =>
    call<MailMessage>("POST", `/v1/admin/mail/${id(messageId)}/retry`),
};
