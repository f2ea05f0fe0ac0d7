/**
 * The upload protocol (docs/artifact-protocol.md, "Upload one file"), as the Python SDK's
 * `modelreg/uploads.py` implements it. Three ways, cheapest first:
 *
 * - **Known content** (`FindMissingBlobs` says the registry stores these bytes): `StartUpload`
 *   records the file at once and returns a FINISHED session. No byte is sent.
 * - **Large files** (at least `RESUMABLE_MIN_BYTES`): a resumable session, noted in the upload
 *   journal (journal.ts) so a push after a killed process continues it. `WriteUpload` streams
 *   the bytes from the session's `committed_size`; after a broken stream `GetUploadSession` says
 *   where the service stands and a new stream continues from there. The service commits each
 *   whole part as soon as object storage has it, so a break costs at most the parts in flight.
 *   While another session uploads the same content (`concurrent_upload`), this one waits and
 *   reuses its blob instead of sending the bytes twice.
 * - **Small files**: `UploadFile`, one stream, nothing to resume (a retry sends it again).
 *
 * Memory stays bounded: a stream reads the file one message (`chunkBytes`, 64 KiB..2 MiB) at a
 * time, as the transport asks for the next one. The service hashes what it receives and adds the
 * file only when size and SHA-256 match the declaration; the client is never trusted on bytes.
 */

import { open } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { RegistryClient } from "./client.js";
import {
  FailedPrecondition,
  fromConnectError,
  InvalidArgument,
  type ModelregError,
  NotFound,
  RegistryError,
  registryError,
  Unavailable,
} from "./errors.js";
import {
  type UploadFileRequestSchema,
  type UploadSession,
  UploadState,
  type WriteUploadRequestSchema,
} from "./gen/modelregistry/v1/artifact_service_pb.js";
import type { ModelFile } from "./gen/modelregistry/v1/model_pb.js";
import { join, resolve } from "node:path";
import { Journal, uploadKey } from "./journal.js";
import type { LocalFile } from "./local-files.js";

/** S3's smallest part: a smaller file is one part, and a part is what the service commits. */
export const RESUMABLE_MIN_BYTES = 5 * 1024 * 1024;
// Waiting for another upload of the same content: the first and the longest pause.
const WAIT_FIRST_MS = 200;
const WAIT_MAX_MS = 2000;
// FindMissingBlobs takes at most this many digests per call.
const DIGESTS_PER_CALL = 1000;

export type UploadOutcome = "uploaded" | "resumed" | "deduplicated" | "present";

export interface UploadReport {
  file: ModelFile | undefined;
  outcome: UploadOutcome;
  /** Bytes of the file this call sent (re-sent bytes after a broken stream included). */
  sentBytes: number;
  /** `uploads/{id}` when the bytes went through a resumable session. */
  session: string;
  /** Bytes the registry held before this call sent any. */
  skippedBytes: number;
  /** Broken streams continued from the service's `committed_size`. */
  resumedStreams: number;
}

type WriteMessage = MessageInitShape<typeof WriteUploadRequestSchema>;
type UploadFileMessage = MessageInitShape<typeof UploadFileRequestSchema>;
/** What data and finish messages of both upload streams share (fields 2, 3 and 4). */
interface DataMessage {
  writeOffset: bigint;
  data?: Uint8Array;
  finishWrite?: boolean;
}

function ended(session: UploadSession): FailedPrecondition {
  const state = UploadState[session.state] ?? "UNSPECIFIED";
  const detail = session.failureMessage ? `: ${session.failureMessage}` : "";
  return registryError(
    Code.FailedPrecondition,
    `upload session ${session.name} of ${JSON.stringify(session.spec?.path ?? "")} is ${state}${detail}; push again to start over`,
    session.failureReason || `UPLOAD_${state}`,
  ) as FailedPrecondition;
}

export class Uploader {
  readonly #client: RegistryClient;
  // Which upload session holds the committed bytes of a file (keyed by `uploadKey`).
  readonly #journal: Journal;

  constructor(client: RegistryClient) {
    this.#client = client;
    this.#journal = new Journal(join(client.settings.cacheDir, "uploads"));
  }

  /** Which of `digests` the registry stores already (asked for the version receiving them). */
  async storedBlobs(version: string, digests: Iterable<string>): Promise<Set<string>> {
    const wanted = [...new Set(digests)];
    const stored = new Set<string>();
    for (let start = 0; start < wanted.length; start += DIGESTS_PER_CALL) {
      const batch = wanted.slice(start, start + DIGESTS_PER_CALL);
      const response = await this.#client.call((o) =>
        this.#client.artifacts.findMissingBlobs({ sha256s: batch, modelVersion: version }, o),
      );
      const missing = new Set(response.missingSha256s);
      for (const digest of batch) if (!missing.has(digest)) stored.add(digest);
    }
    return stored;
  }

  /**
   * Stores `file` in the PENDING `version`. `stored`: the registry holds these bytes (from
   * `storedBlobs`). `replace`: other content at the file's path is replaced (else
   * `AlreadyExists`, reason FILE_EXISTS).
   */
  async upload(
    version: string,
    file: LocalFile,
    { stored, replace = false }: { stored: boolean; replace?: boolean },
  ): Promise<UploadReport> {
    if (!stored && file.sizeBytes < RESUMABLE_MIN_BYTES) return this.#uploadWhole(version, file, replace);
    let session = stored
      ? await this.#start(version, file, replace)
      : await this.#resumableSession(version, file, replace);
    // Recorded from a stored blob at once (a session an earlier push finished is reported by
    // `writeSession`, which finds nothing left to send).
    if (session.state === UploadState.FINISHED && session.blobReused) {
      this.forget(version, file);
      return {
        file: session.file,
        outcome: "deduplicated",
        sentBytes: 0,
        session: session.name,
        skippedBytes: file.sizeBytes,
        resumedStreams: 0,
      };
    }
    if (session.state !== UploadState.FINISHED) this.#remember(version, file, session);
    session = await this.#afterConcurrentUploads(version, file, session, replace);
    const report = await this.writeSession(file, session);
    this.forget(version, file);
    return report;
  }

  /** The session an interrupted push left for this file, if it can go on; else a new one. */
  async #resumableSession(version: string, file: LocalFile, replace: boolean): Promise<UploadSession> {
    const earlier = this.#journal.load(uploadKey(version, file.path, file.sha256))?.session;
    if (typeof earlier === "string" && earlier !== "") {
      try {
        const session = await this.#session(earlier);
        const spec = session.spec;
        const same =
          spec?.modelVersion === version &&
          spec.path === file.path &&
          spec.sha256 === file.sha256 &&
          spec.sizeBytes === BigInt(file.sizeBytes);
        if (same && (session.state === UploadState.ACTIVE || session.state === UploadState.FINISHED)) {
          return session;
        }
      } catch (error) {
        // Gone (deleted some time after it ended) or not a session name: start a new one.
        if (!(error instanceof NotFound || error instanceof InvalidArgument)) throw error;
      }
    }
    return this.#start(version, file, replace);
  }

  #remember(version: string, file: LocalFile, session: UploadSession): void {
    this.#journal.save(uploadKey(version, file.path, file.sha256), {
      session: session.name,
      model_version: version,
      path: file.path,
      sha256: file.sha256,
      size_bytes: file.sizeBytes,
      source: resolve(file.source),
    });
  }

  /** Drops the journal's note of the file's upload session: nothing is left to resume. */
  forget(version: string, file: LocalFile): void {
    this.#journal.remove(uploadKey(version, file.path, file.sha256));
  }

  /** Continues an upload session (e.g. one a killed process left) from its `committed_size`. */
  async resume(sessionName: string, file: LocalFile): Promise<UploadReport> {
    return this.writeSession(file, await this.#session(sessionName));
  }

  #start(version: string, file: LocalFile, replace: boolean): Promise<UploadSession> {
    const spec = {
      modelVersion: version,
      path: file.path,
      sizeBytes: BigInt(file.sizeBytes),
      sha256: file.sha256,
      replaceExisting: replace,
    };
    return this.#client.call((o) => this.#client.artifacts.startUpload({ spec }, o));
  }

  #session(name: string): Promise<UploadSession> {
    return this.#client.call((o) => this.#client.artifacts.getUploadSession({ name }, o));
  }

  async #cancelQuietly(name: string): Promise<void> {
    try {
      await this.#client.call((o) => this.#client.artifacts.cancelUploadSession({ name }, o));
    } catch (error) {
      // Ended already: nothing left to free.
      if (!(error instanceof FailedPrecondition || error instanceof NotFound)) throw error;
    }
  }

  /**
   * Waits while another session uploads the same content, then reuses its blob. The service
   * names the other session only while it makes progress: when it stalls or fails, this
   * session sends the bytes itself, so nobody waits forever.
   */
  async #afterConcurrentUploads(
    version: string,
    file: LocalFile,
    session: UploadSession,
    replace: boolean,
  ): Promise<UploadSession> {
    let delay = WAIT_FIRST_MS;
    while (session.state === UploadState.ACTIVE && session.concurrentUpload) {
      await sleep(delay);
      delay = Math.min(delay * 2, WAIT_MAX_MS);
      session = await this.#session(session.name);
      if (session.concurrentUpload || session.state !== UploadState.ACTIVE) continue;
      if (!(await this.storedBlobs(version, [file.sha256])).has(file.sha256)) return session;
      await this.#cancelQuietly(session.name);
      session = await this.#start(version, file, replace);
    }
    return session;
  }

  /** Sends what the session lacks, continuing from `committed_size` after every break. */
  async writeSession(file: LocalFile, session: UploadSession): Promise<UploadReport> {
    const skipped = Number(session.committedSize);
    let current = session;
    let fresh = true; // `current` was just read from the service
    let refusedAtStart = false; // the last stream was refused before it carried bytes
    let sent = 0;
    let resumedStreams = 0;
    const finished = await this.#client.retry(async () => {
      if (!fresh) {
        // After a broken stream: where does the service stand now?
        current = await this.#session(current.name);
        if (!refusedAtStart) resumedStreams++;
      }
      fresh = false;
      refusedAtStart = false;
      if (current.state === UploadState.FINISHED) return current;
      if (current.state !== UploadState.ACTIVE) throw ended(current);
      const start = Number(current.committedSize);
      const options = this.#client.callOptions(this.#client.streamTimeoutMs(file.sizeBytes - start));
      const first: WriteMessage = { uploadSession: current.name, writeOffset: BigInt(start) };
      try {
        return await this.#client.artifacts.writeUpload(
          this.#messages(first, file, start, (n) => (sent += n)),
          options,
        );
      } catch (error) {
        const failure = await this.#streamFailure(error, current.name, file);
        // A stream refused for its offset carried nothing: it does not count as resumed.
        refusedAtStart = failure.reason === "WRITE_OFFSET_MISMATCH";
        throw failure;
      }
    });
    if (finished.state !== UploadState.FINISHED) throw ended(finished);
    const deduplicated = finished.blobReused && sent === 0;
    return {
      file: finished.file,
      outcome: deduplicated ? "deduplicated" : skipped > 0 ? "resumed" : "uploaded",
      sentBytes: sent,
      session: finished.name,
      skippedBytes: deduplicated ? file.sizeBytes : skipped,
      resumedStreams,
    };
  }

  /**
   * What a failed upload stream means: `Unavailable` to continue from where the service stands
   * (retried), or the error that ends the upload.
   */
  async #streamFailure(error: unknown, session: string, file: LocalFile): Promise<ModelregError> {
    const failure = fromConnectError(error);
    if (failure.reason === "WRITE_OFFSET_MISMATCH") {
      // The service records a cut stream's parts once S3 has them, which may be after we read
      // the session: it stands further on now; continue from there.
      return new Unavailable(
        `the upload of ${file.path} is committed further than we read; continuing`,
        "WRITE_OFFSET_MISMATCH",
        Code.Unavailable,
        {},
        { cause: error },
      );
    }
    const broken =
      failure instanceof RegistryError &&
      [Code.Unavailable, Code.Internal, Code.Unknown, Code.Canceled, Code.Aborted].includes(failure.code) &&
      !(failure.fromService && failure.code !== Code.Unavailable);
    if (!broken) return failure;
    // A reset connection, or the service ending the stream while we still wrote: the session
    // says whether it refused the bytes (ended) or is waiting for the rest (ACTIVE).
    const state = await this.#session(session);
    if (state.state !== UploadState.ACTIVE && state.state !== UploadState.FINISHED) return ended(state);
    return new Unavailable(
      `the upload stream of ${file.path} broke (${failure.message}); resuming`,
      "STREAM_BROKEN",
      Code.Unavailable,
      {},
      { cause: error },
    );
  }

  /** One stream's messages: `first`, the file's bytes from `start`, then `finish_write`. */
  async *#messages<M extends WriteMessage | UploadFileMessage>(
    first: M,
    file: LocalFile,
    start: number,
    count: (bytes: number) => void,
  ): AsyncGenerator<M | DataMessage> {
    yield first;
    const chunkBytes = this.#client.settings.chunkBytes;
    const handle = await open(file.source, "r");
    try {
      let offset = start;
      while (offset < file.sizeBytes) {
        // A fresh buffer per message: the transport may still hold the previous one.
        const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, file.sizeBytes - offset));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break; // the file shrank: the service will refuse the size
        yield { writeOffset: BigInt(offset), data: buffer.subarray(0, bytesRead) };
        offset += bytesRead;
        count(bytesRead);
      }
      yield { writeOffset: BigInt(offset), finishWrite: true };
    } finally {
      await handle.close();
    }
  }

  /** One `UploadFile` stream; a retry sends the whole (small) file again. */
  async #uploadWhole(version: string, file: LocalFile, replace: boolean): Promise<UploadReport> {
    const spec = {
      modelVersion: version,
      path: file.path,
      sizeBytes: BigInt(file.sizeBytes),
      sha256: file.sha256,
      replaceExisting: replace,
    };
    let sent = 0;
    const stored = await this.#client.call(
      (o) =>
        this.#client.artifacts.uploadFile(
          this.#messages<UploadFileMessage>({ spec }, file, 0, (n) => (sent += n)),
          o,
        ),
      { timeoutMs: this.#client.streamTimeoutMs(file.sizeBytes) },
    );
    return { file: stored, outcome: "uploaded", sentBytes: sent, session: "", skippedBytes: 0, resumedStreams: 0 };
  }
}
