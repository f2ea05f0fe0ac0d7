/**
 * `RegistryClient`: both services (metadata and artifacts) behind one object, with the
 * conventions of every call (docs/artifact-protocol.md): the bearer credential, an
 * `x-request-id` that a retry of the same logical call reuses, a deadline on every call (streams
 * get more time the more bytes they move), retries of UNAVAILABLE with backoff, and errors
 * decoded into typed `RegistryError`s carrying the ErrorInfo reason.
 *
 * The generated clients are public (`metadata`, `artifacts`): any RPC the helpers do not cover
 * is one `call(...)` away.
 */

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type CallOptions, type Client, createClient } from "@connectrpc/connect";
import {
  ARTIFACT_ADDR_ENV,
  baseUrls,
  DEFAULT_ARTIFACT_ADDR,
  DEFAULT_METADATA_ADDR,
  METADATA_ADDR_ENV,
  TLS_ENV,
  tlsMode,
  type TlsMode,
} from "./addresses.js";
import { findCredential } from "./credentials.js";
import { defaultCacheDir } from "./journal.js";
import { AlreadyExists, fromConnectError, NotFound, type Unavailable } from "./errors.js";
import { ArtifactService } from "./gen/modelregistry/v1/artifact_service_pb.js";
import { MetadataService } from "./gen/modelregistry/v1/metadata_service_pb.js";
import {
  type Alias,
  type Model,
  type ModelVersion,
  ModelVersionSchema,
} from "./gen/modelregistry/v1/model_pb.js";
import { modelResource, parseModel, parseVersionRef } from "./names.js";
import { pull, type PullOptions, type PullResult } from "./pulls.js";
import { push, type PushOptions, type PushResult } from "./pushes.js";
import { DEFAULT_RETRY, type RetryPolicy, withRetries } from "./retries.js";
import { serviceTransport, type ServiceTransport } from "./transport.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

const MIB = 1024 * 1024;

export interface ClientOptions {
  /** `host:port`, a comma-separated list of replicas, or a URL; default MODELREG_METADATA_ADDR. */
  metadataAddr?: string;
  /** Likewise for the artifact service; default MODELREG_ARTIFACT_ADDR. */
  artifactAddr?: string;
  /** The credential; default: MODELREG_TOKEN, MODELREG_TOKEN_FILE, ... (credentials.ts). */
  token?: string;
  /** TLS: "auto" (unless loopback), "on", "off"; default MODELREG_TLS. */
  tls?: TlsMode;
  /** A CA to trust for TLS (PEM file); default MODELREG_TLS_CA_FILE, else the system's. */
  caFile?: string;
  /** Mutual TLS; default MODELREG_TLS_CLIENT_CERT_FILE and MODELREG_TLS_CLIENT_KEY_FILE. */
  clientCertFile?: string;
  clientKeyFile?: string;
  /** Deadline of a unary call (ms). */
  timeoutMs?: number;
  /** Streams get `timeoutMs` plus their bytes at this rate, so a stalled transfer ends. */
  minTransferBytesPerSecond?: number;
  retry?: Partial<RetryPolicy>;
  /** Files transferred at once; each holds at most a few messages in memory. */
  parallelFiles?: number;
  /** Bytes per upload message, kept within the protocol's 64 KiB..2 MiB. */
  chunkBytes?: number;
  /** Notes that let a killed push continue (journal.ts); default MODELREG_CACHE_DIR, else
   * `${XDG_CACHE_HOME:-~/.cache}/modelreg`, shared with the Python SDK. */
  cacheDir?: string;
  /** Told before each retry of UNAVAILABLE (e.g. to log it). */
  onRetry?: (error: Unavailable, delayMs: number) => void;
  /** Where the defaults come from; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ClientSettings {
  metadataAddr: string;
  artifactAddr: string;
  timeoutMs: number;
  minTransferBytesPerSecond: number;
  retry: RetryPolicy;
  parallelFiles: number;
  chunkBytes: number;
  cacheDir: string;
  /** Where the credential came from (`MODELREG_TOKEN`, ...), or "" when there is none. */
  credentialSource: string;
}

/** Options of `call`: the deadline of each attempt, and whether UNAVAILABLE is retried. */
export interface CallSettings {
  timeoutMs?: number;
  retry?: boolean;
}

export class RegistryClient {
  readonly metadata: Client<typeof MetadataService>;
  readonly artifacts: Client<typeof ArtifactService>;
  readonly settings: Readonly<ClientSettings>;
  readonly #transports: ServiceTransport[];
  readonly #onRetry: ((error: Unavailable, delayMs: number) => void) | undefined;

  constructor(options: ClientOptions = {}) {
    const env = options.env ?? process.env;
    const metadataAddr = options.metadataAddr || env[METADATA_ADDR_ENV] || DEFAULT_METADATA_ADDR;
    const artifactAddr = options.artifactAddr || env[ARTIFACT_ADDR_ENV] || DEFAULT_ARTIFACT_ADDR;
    const credential =
      options.token !== undefined
        ? { token: options.token.trim(), source: "the token option" }
        : findCredential(env, metadataAddr);
    const mode = options.tls ?? tlsMode(env[TLS_ENV]);
    const timeoutMs = options.timeoutMs ?? 30_000;
    const transportOptions = {
      token: credential?.token ?? "",
      caFile: options.caFile ?? env[`${TLS_ENV}_CA_FILE`],
      clientCertFile: options.clientCertFile ?? env[`${TLS_ENV}_CLIENT_CERT_FILE`],
      clientKeyFile: options.clientKeyFile ?? env[`${TLS_ENV}_CLIENT_KEY_FILE`],
      defaultTimeoutMs: timeoutMs,
    };
    const metadata = serviceTransport(baseUrls(metadataAddr, mode), transportOptions);
    const artifacts = serviceTransport(baseUrls(artifactAddr, mode), transportOptions);
    this.#transports = [metadata, artifacts];
    this.metadata = createClient(MetadataService, metadata.transport);
    this.artifacts = createClient(ArtifactService, artifacts.transport);
    this.#onRetry = options.onRetry;
    this.settings = {
      metadataAddr,
      artifactAddr,
      timeoutMs,
      minTransferBytesPerSecond: options.minTransferBytesPerSecond ?? MIB,
      retry: { ...DEFAULT_RETRY, ...options.retry },
      parallelFiles: Math.max(1, options.parallelFiles ?? 4),
      chunkBytes: Math.min(Math.max(options.chunkBytes ?? MIB, 64 * 1024), 2 * MIB),
      cacheDir: options.cacheDir ?? defaultCacheDir(env),
      credentialSource: credential?.source ?? "",
    };
  }

  /** Ends the HTTP/2 connections (idle ones never keep the process alive anyway). */
  close(): void {
    for (const transport of this.#transports) transport.close();
  }

  /** The deadline of a stream that moves `bytes`. */
  streamTimeoutMs(bytes: number | bigint): number {
    const seconds = Number(bytes) / this.settings.minTransferBytesPerSecond;
    return this.settings.timeoutMs + Math.ceil(seconds * 1000);
  }

  /** Per-call options: one request id for every attempt of a logical call. */
  callOptions(timeoutMs?: number): CallOptions {
    return { headers: { "x-request-id": randomUUID() }, timeoutMs: timeoutMs ?? this.settings.timeoutMs };
  }

  /**
   * One logical call: `invoke` gets the call options (deadline, request id), errors become
   * typed, and UNAVAILABLE is retried with backoff (the same request id each time).
   */
  async call<T>(invoke: (options: CallOptions) => Promise<T>, settings: CallSettings = {}): Promise<T> {
    const options = this.callOptions(settings.timeoutMs);
    const attempt = async (): Promise<T> => {
      try {
        return await invoke(options);
      } catch (error) {
        throw fromConnectError(error);
      }
    };
    if (settings.retry === false) return attempt();
    return withRetries(this.settings.retry, attempt, this.#onRetry);
  }

  retry<T>(operation: () => Promise<T>): Promise<T> {
    return withRetries(this.settings.retry, operation, this.#onRetry);
  }

  // Models and versions: the helpers a push and a pull need. Everything else: `call`.

  async getModel(model: string): Promise<Model> {
    const name = modelResource(parseModel(model));
    return this.call((o) => this.metadata.getModel({ name }, o));
  }

  /** Registers `namespace/model`; `AlreadyExists` if the name is taken. */
  async createModel(model: string, fields: { description?: string; displayName?: string } = {}): Promise<Model> {
    const name = parseModel(model);
    const requestId = randomUUID();
    return this.call((o) =>
      this.metadata.createModel(
        { parent: `namespaces/${name.namespace}`, modelId: name.model, model: fields, requestId },
        o,
      ),
    );
  }

  /** The model, registered first if it does not exist yet. */
  async ensureModel(model: string): Promise<Model> {
    try {
      return await this.getModel(model);
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
    }
    try {
      return await this.createModel(model);
    } catch (error) {
      if (!(error instanceof AlreadyExists)) throw error; // created concurrently
      return this.getModel(model);
    }
  }

  /** A new PENDING version of `model` with the draft's metadata (params, metrics, tags...). */
  async createVersion(
    model: string,
    draft: MessageInitShape<typeof ModelVersionSchema> = {},
    requestId: string = randomUUID(),
  ): Promise<ModelVersion> {
    const parent = modelResource(parseModel(model));
    const modelVersion = create(ModelVersionSchema, draft);
    return this.call((o) => this.metadata.createModelVersion({ parent, modelVersion, requestId }, o));
  }

  /** A version by `ns/model/3`, `ns/model@alias` or resource name. */
  async getVersion(ref: string): Promise<ModelVersion> {
    const parsed = parseVersionRef(ref);
    if (parsed.kind === "alias") {
      return this.call((o) => this.metadata.getModelVersionByAlias({ name: parsed.name }, o));
    }
    return this.call((o) => this.metadata.getModelVersion({ name: parsed.name }, o));
  }

  /** Freezes a PENDING version's manifest (state READY); sealing twice is a no-op. */
  async sealVersion(ref: string, etag = ""): Promise<ModelVersion> {
    const parsed = parseVersionRef(ref);
    if (parsed.kind === "alias") throw new TypeError("seal a version by number, not by alias");
    return this.call((o) => this.metadata.sealModelVersion({ name: parsed.name, etag }, o));
  }

  /** Points `alias` of `model` at version `number` (refused moves: `FailedPrecondition`). */
  async setAlias(model: string, alias: string, number: bigint | number, etag = ""): Promise<Alias> {
    const base = modelResource(parseModel(model));
    const name = parseVersionRef(`${base}/aliases/${alias}`).name;
    return this.call((o) =>
      this.metadata.setAlias({ name, modelVersion: `${base}/versions/${BigInt(number)}`, etag }, o),
    );
  }

  // Moving files (docs/artifact-protocol.md).

  /** Registers a file or directory as a new, sealed version of `model` (pushes.ts). */
  push(model: string, source: string, options?: PushOptions): Promise<PushResult> {
    return push(this, model, source, options);
  }

  /** Downloads a version (`ns/model@alias`, `ns/model/3`) into `destination`, verified (pulls.ts). */
  pull(ref: string, destination: string, options?: PullOptions): Promise<PullResult> {
    return pull(this, ref, destination, options);
  }
}
