// Types read off the app's own generated contract (`paths` from openapi-typescript, as
// `make clients` writes it): every collection is typed by name. Without it
// (`createClient({url})`), any name goes and documents are plain JSON.

type DocumentsPath<N extends string> = `/v1/collections/${N}/documents`;
type DocumentPath<N extends string> = `${DocumentsPath<N>}/{doc_id}`;

/** A document when the app gave no contract types. */
export interface UntypedDoc {
  id: string;
  collection: string;
  owner: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  data: Record<string, unknown>;
}
type Json = Record<string, unknown>;
/** `P` was not given (it is `unknown`): nothing to read types from. */
type Untyped<P, Loose, Typed> = unknown extends P ? Loose : Typed;

/** The collections the contract names (those the caller could read when it was made). */
export type CollectionName<P> = unknown extends P ? string : {
  [K in keyof P & string]: K extends `/v1/collections/${infer N}/documents`
    ? N extends `{${string}}`
      ? never
      : N
    : never;
}[keyof P & string];

type Operation<P, Path extends string, M extends string> = Path extends keyof P
  ? M extends keyof P[Path]
    ? P[Path][M]
    : never
  : never;

type Body<O, Type extends string = "application/json"> = O extends {
  requestBody?: { content: { [K in Type]: infer B } };
}
  ? B
  : never;

type Answer<O, Status extends number> = O extends {
  responses: { [K in Status]: { content: { "application/json": infer R } } };
}
  ? R
  : never;

/** What you send to create one: the collection's schema. */
export type NewData<P, N extends string> = Untyped<
  P,
  Json,
  Body<Operation<P, DocumentsPath<N>, "post">>
>;
/** A stored document: `{id, owner, version, created_at, updated_at, data, ...}`. */
export type Doc<P, N extends string> = Untyped<
  P,
  UntypedDoc,
  Answer<Operation<P, DocumentsPath<N>, "post">, 201>
>;
/** A page of a list: `{items, next_cursor}`. */
export type Page<P, N extends string> = Untyped<
  P,
  { items: UntypedDoc[]; next_cursor: string | null },
  Answer<Operation<P, DocumentsPath<N>, "get">, 200>
>;
/** RFC 7396 merge patch of `data`: every field optional, `null` removes it. */
export type MergePatch<P, N extends string> = Untyped<
  P,
  Json,
  Body<Operation<P, DocumentPath<N>, "patch">, "application/merge-patch+json">
>;
/** RFC 6902 JSON Patch operations. */
export type JsonPatch<P, N extends string> = Untyped<
  P,
  { op: string; path: string; value?: unknown; from?: string }[],
  Body<Operation<P, DocumentPath<N>, "patch">, "application/json-patch+json">
>;
/** Update operators (`inc`, `set`, `push`, ...), typed per field by the contract. */
export type UpdateOps<P, N extends string> = Untyped<
  P,
  Json,
  Body<Operation<P, `${DocumentPath<N>}/update`, "post">>
>;
/** The query of a list: `filter`, `sort`, `fields`, `limit`, `cursor`. */
export type ListQuery<P, N extends string> = Untyped<
  P,
  { filter?: string; sort?: string; fields?: string; limit?: number; cursor?: string },
  Operation<P, DocumentsPath<N>, "get"> extends { parameters: { query?: infer Q } }
    ? NonNullable<Q>
    : never
>;

type Post<P, Path extends string> = Operation<P, Path, "post">;
/** `POST …/bulk`: many creates, one answer per item. */
export type BulkCreate<P, N extends string> = Body<Post<P, `${DocumentsPath<N>}/bulk`>>;
export type BulkCreated<P, N extends string> = Answer<Post<P, `${DocumentsPath<N>}/bulk`>, 200>;
/** `POST …/bulk-update`: `{filter, update, dry_run?, limit?}`. */
export type BulkUpdate<P, N extends string> = Body<Post<P, `${DocumentsPath<N>}/bulk-update`>>;
export type BulkDelete<P, N extends string> = Body<Post<P, `${DocumentsPath<N>}/bulk-delete`>>;
export type BulkChanged<P, N extends string> = Answer<
  Post<P, `${DocumentsPath<N>}/bulk-update`>,
  200
>;
/** `POST /v1/batch`: operations across collections in one transaction. */
export type Batch<P> = Body<Post<P, "/v1/batch">>;
export type BatchResult<P> = Answer<Post<P, "/v1/batch">, 200>;
