// Errors as the API sends them: RFC 9457 problem documents with a machine-readable
// `code`. `Code` is the contract's ErrorCode union when the app's types are given.

export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type: string;
}

export interface Problem<Code extends string = string> {
  type?: string;
  title: string;
  status: number;
  code: Code;
  detail: string;
  request_id?: string | null;
  errors?: FieldError[];
}

/** A request the API refused (4xx) or failed (5xx), with its problem document. */
export class DocstoreError<Code extends string = string> extends Error {
  readonly status: number;
  readonly code: Code;
  readonly problem: Problem<Code>;
  /** Seconds to wait, from `Retry-After` (429, 503). */
  readonly retryAfter: number | undefined;

  constructor(problem: Problem<Code>, retryAfter?: number) {
    super(`${problem.status} ${problem.code}: ${problem.detail}`);
    this.name = "DocstoreError";
    this.status = problem.status;
    this.code = problem.code;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** `If-Match` did not match (412): someone changed the document since it was read. */
export class ConflictError<Code extends string = string> extends DocstoreError<Code> {
  constructor(problem: Problem<Code>) {
    super(problem);
    this.name = "ConflictError";
  }
}

export async function problemOf(response: Response): Promise<DocstoreError> {
  let problem: Problem;
  try {
    problem = (await response.json()) as Problem;
  } catch {
    problem = {
      title: response.statusText || "Error",
      status: response.status,
      code: response.status >= 500 ? "internal_error" : "bad_request",
      detail: `HTTP ${response.status}`,
    };
  }
  if (response.status === 412) return new ConflictError(problem);
  const retry = Number(response.headers.get("Retry-After"));
  return new DocstoreError(problem, Number.isFinite(retry) && retry > 0 ? retry : undefined);
}
