// @docstore/client: the official TypeScript SDK of Docstore.
export {
  Auth,
  Collection,
  Files,
  type StoredFile,
  type Upload,
  DocstoreClient,
  createClient,
  type AuthEvent,
  type AuthListener,
  type ClientOptions,
  type MfaChallenge,
  type RequestOptions,
  type SignInResult,
} from "./client.js";
export { ConflictError, DocstoreError, type FieldError, type Problem } from "./errors.js";
export {
  type ChangeEvent,
  type ConnectionState,
  type SubscribeOptions,
  type Subscription,
} from "./realtime.js";
export { memoryStorage, webStorage, type Session, type SessionStorage } from "./storage.js";
export type {
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
  UntypedDoc,
  UpdateOps,
} from "./types.js";
