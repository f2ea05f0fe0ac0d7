/**
 * Errors of the client: one class per gRPC status the services answer with, plus failures on
 * this machine (a digest that does not match, a file that cannot be read).
 *
 * Every error the services return follows AIP-193: a status code, a message, and in the
 * `grpc-status-details-bin` trailer a `google.rpc.Status` with an `ErrorInfo` (the reason, e.g.
 * `WRITE_OFFSET_MISMATCH`, and metadata) and, for bad input, a `BadRequest` naming the field.
 * `fromConnectError` keeps all of it, so callers branch on classes and `reason`, never on text.
 */

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  type BadRequest,
  type ErrorInfo,
  type FieldViolation,
} from "./status-details.js";

const REQUEST_ID_HEADER = "x-request-id";

/** Every error this package raises: `reason` is UPPER_SNAKE_CASE, from the service or local. */
export class ModelregError extends Error {
  readonly reason: string;

  constructor(message: string, reason: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.reason = reason;
  }
}

/** A status answered by a service (or by the transport on its behalf). */
export class RegistryError extends ModelregError {
  readonly code: Code;
  /** `ErrorInfo.domain` (`modelreg.dev`); empty when the status carried no ErrorInfo. */
  readonly domain: string;
  /** `ErrorInfo.metadata`, e.g. `committed_size` of a WRITE_OFFSET_MISMATCH. */
  readonly metadata: Readonly<Record<string, string>>;
  /** `BadRequest.field_violations` of an INVALID_ARGUMENT. */
  readonly fieldViolations: readonly FieldViolation[];
  /** The `x-request-id` the service logged the call under (empty if it never answered). */
  readonly requestId: string;

  constructor(
    message: string,
    reason: string,
    code: Code,
    details: {
      domain?: string;
      metadata?: Record<string, string>;
      fieldViolations?: FieldViolation[];
      requestId?: string;
    } = {},
    options?: ErrorOptions,
  ) {
    super(message, reason, options);
    this.code = code;
    this.domain = details.domain ?? "";
    this.metadata = details.metadata ?? {};
    this.fieldViolations = details.fieldViolations ?? [];
    this.requestId = details.requestId ?? "";
  }

  /** Whether the status came with the service's ErrorInfo (rather than from the transport). */
  get fromService(): boolean {
    return this.domain !== "";
  }
}

export class Cancelled extends RegistryError {}
export class Unknown extends RegistryError {}
export class InvalidArgument extends RegistryError {}
export class DeadlineExceeded extends RegistryError {}
export class NotFound extends RegistryError {}
export class AlreadyExists extends RegistryError {}
export class PermissionDenied extends RegistryError {}
export class ResourceExhausted extends RegistryError {}
export class FailedPrecondition extends RegistryError {}
export class Aborted extends RegistryError {}
export class OutOfRange extends RegistryError {}
export class Unimplemented extends RegistryError {}
export class Internal extends RegistryError {}
/** The only status a client retries (with backoff): the call did not reach a server that acted. */
export class Unavailable extends RegistryError {}
export class DataLoss extends RegistryError {}
export class Unauthenticated extends RegistryError {}

type RegistryErrorClass = new (
  ...args: ConstructorParameters<typeof RegistryError>
) => RegistryError;

const CLASSES: Record<Code, RegistryErrorClass> = {
  [Code.Canceled]: Cancelled,
  [Code.Unknown]: Unknown,
  [Code.InvalidArgument]: InvalidArgument,
  [Code.DeadlineExceeded]: DeadlineExceeded,
  [Code.NotFound]: NotFound,
  [Code.AlreadyExists]: AlreadyExists,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.ResourceExhausted]: ResourceExhausted,
  [Code.FailedPrecondition]: FailedPrecondition,
  [Code.Aborted]: Aborted,
  [Code.OutOfRange]: OutOfRange,
  [Code.Unimplemented]: Unimplemented,
  [Code.Internal]: Internal,
  [Code.Unavailable]: Unavailable,
  [Code.DataLoss]: DataLoss,
  [Code.Unauthenticated]: Unauthenticated,
};

/** The status's name as a reason, for statuses without an ErrorInfo: `UNAVAILABLE`. */
export function codeName(code: Code): string {
  if (code === Code.Canceled) return "CANCELLED"; // gRPC's spelling; Connect's enum says Canceled
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The typed error for `code`, e.g. to raise a status on the client's own behalf. */
export function registryError(
  code: Code,
  message: string,
  reason = codeName(code),
  details?: ConstructorParameters<typeof RegistryError>[3],
  options?: ErrorOptions,
): RegistryError {
  const Class = CLASSES[code] ?? Unknown;
  return new Class(message, reason, code, details, options);
}

// Node's codes for a connection that failed or broke. Connect reports some of them as ABORTED or
// INTERNAL (its server-side view: the peer hung up); for a client they mean what gRPC's own
// transports say, UNAVAILABLE: the call may not have reached a server that acted on it.
const CONNECTION_LOST = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_INVALID_SESSION",
]);

function lostConnection(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let cause = error; cause instanceof Error && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === "string" && CONNECTION_LOST.has(code)) return code;
  }
  return undefined;
}

/**
 * The typed error for anything a call threw: a `ConnectError` becomes the class of its code,
 * with the ErrorInfo and BadRequest decoded from its details (a broken connection is
 * `Unavailable`, reason CONNECTION_LOST); a `ModelregError` stays as it is;
 * anything else is `Unknown` (the original is its `cause`).
 */
export function fromConnectError(error: unknown): ModelregError {
  if (error instanceof ModelregError) return error;
  const connect = ConnectError.from(error);
  const [info] = connect.findDetails(ErrorInfoSchema) as unknown as ErrorInfo[];
  const violations = (connect.findDetails(BadRequestSchema) as unknown as BadRequest[]).flatMap(
    (bad) => bad.fieldViolations,
  );
  // This client never cancels a call itself (it passes no AbortSignal), so CANCELLED without
  // the service's ErrorInfo is the transport's doing too: HTTP/2 closes the streams of a
  // connection that went away with RST_STREAM CANCEL.
  const lost =
    info === undefined ? (lostConnection(error) ?? (connect.code === Code.Canceled ? "CANCEL" : undefined)) : undefined;
  const code = lost !== undefined ? Code.Unavailable : connect.code;
  return registryError(
    code,
    connect.rawMessage,
    info?.reason || (lost !== undefined ? "CONNECTION_LOST" : codeName(code)),
    {
      domain: info?.domain ?? "",
      metadata: { ...(info?.metadata ?? {}) },
      fieldViolations: violations.map(({ field, description, reason }) => ({
        field,
        description,
        reason,
      })),
      requestId: connect.metadata.get(REQUEST_ID_HEADER) ?? "",
    },
    { cause: error },
  );
}

/** Bytes on this machine do not match the size or digest the registry recorded. */
export class IntegrityError extends ModelregError {}

/** A version's manifest names a path that cannot be written safely under the destination. */
export class UnsafeManifest extends ModelregError {
  constructor(message: string) {
    super(message, "UNSAFE_MANIFEST");
  }
}

/** A local file or directory cannot be pushed (missing, empty, unreadable, bad path). */
export class LocalFileError extends ModelregError {}

/** A credential source is set but cannot be used (unreadable, empty, too widely readable). */
export class CredentialError extends ModelregError {}

/**
 * A pull's destination holds other files under paths the pull must write. Nothing was changed;
 * `paths` lists every local path in the way. Pull elsewhere, or pass `force: true`.
 */
export class DestinationInTheWay extends ModelregError {
  readonly paths: readonly string[];

  constructor(message: string, paths: string[]) {
    super(message, "DESTINATION_NOT_EMPTY");
    this.paths = paths;
  }
}
