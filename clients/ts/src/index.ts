/**
 * The TypeScript client of the modelreg registry: `RegistryClient` (both services, credentials,
 * deadlines, retries, typed errors), `push` / `pull` (resumable, verified transfers), and the
 * generated messages and services (`@modelreg/client/gen/modelregistry/v1/*_pb`).
 */

export { RegistryClient, type CallSettings, type ClientOptions, type ClientSettings } from "./client.js";
export { baseUrls, isLoopback, type TlsMode } from "./addresses.js";
export { findCredential, type Credential } from "./credentials.js";
export * from "./errors.js";
export { type ErrorInfo, type FieldViolation } from "./status-details.js";
export { DEFAULT_RETRY, withRetries, type RetryPolicy } from "./retries.js";
export { parseModel, parseVersionRef, type ModelName, type VersionRef } from "./names.js";
export { describeFiles, sha256File, type LocalFile } from "./local-files.js";
export { Uploader, RESUMABLE_MIN_BYTES, type UploadOutcome, type UploadReport } from "./uploads.js";
export { downloadFile, type DownloadReport } from "./downloads.js";
export { push, type PushOptions, type PushResult, type PushedFile } from "./pushes.js";
export { pull, type PullOptions, type PullResult, type PulledFile } from "./pulls.js";
export * from "./gen/modelregistry/v1/model_pb.js";
export * from "./gen/modelregistry/v1/artifact_service_pb.js";
export * from "./gen/modelregistry/v1/metadata_service_pb.js";
