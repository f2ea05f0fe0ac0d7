/**
 * Push: local files become a sealed model version. The files are hashed (streamed), a PENDING
 * version is created (and the model, if needed), every file its manifest lacks is uploaded,
 * `parallelFiles` at a time (content the registry stores already is recorded without sending
 * a byte; large files go through resumable sessions), the version is sealed, and an alias
 * optionally pointed at it.
 *
 * The push journal (journal.ts, `<cache>/pushes`) remembers the version a push of exactly this
 * content and metadata created, so running the same push again after a killed process continues
 * that version (files already in its manifest are not sent again, and each large file continues
 * from the last byte the service committed) instead of creating a stray second version.
 */

import { createHash, randomUUID } from "node:crypto";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import type { RegistryClient } from "./client.js";
import { type ModelVersion, ModelVersionState } from "./gen/modelregistry/v1/model_pb.js";
import { NotFound } from "./errors.js";
import { Journal } from "./journal.js";
import { describeFiles, type LocalFile } from "./local-files.js";
import { parseModel, modelResource } from "./names.js";
import { mapLimited } from "./parallel.js";
import { Uploader, type UploadReport } from "./uploads.js";

export interface PushOptions {
  description?: string;
  /** The version's parameters (any JSON object; a `google.protobuf.Struct`). */
  params?: JsonObject;
  /** Summary metrics, e.g. `{ accuracy: 0.93 }`. */
  metrics?: Record<string, number>;
  tags?: Record<string, string>;
  /** Point this alias at the sealed version (protected aliases may refuse: `FailedPrecondition`). */
  alias?: string;
  /** Register the model when it does not exist (default true). */
  createModel?: boolean;
  /** Replace other content at a path of an existing PENDING `version` (audited). */
  replace?: boolean;
  /** Upload into this existing PENDING version instead of creating one. */
  version?: number | bigint;
}

export interface PushedFile extends Omit<UploadReport, "file"> {
  path: string;
  sizeBytes: number;
  sha256: string;
}

export interface PushResult {
  version: ModelVersion;
  files: PushedFile[];
  /** Bytes sent over all files, re-sent bytes after broken streams included. */
  uploadedBytes: number;
  /** Bytes sent more than once because a stream broke. */
  resentBytes: number;
  /** The push continued a version an interrupted earlier push of the same content created. */
  resumed: boolean;
}

/** JSON with sorted keys: the same options always give the same text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The push journal's key: the model, the version's metadata and every file's content. */
function pushKey(model: string, draft: object, files: readonly LocalFile[]): string {
  const identity = createHash("sha256").update(`typescript\0${model}\0${canonical(draft)}`);
  for (const file of files) identity.update(`\n${file.path}\0${file.sizeBytes}\0${file.sha256}`);
  return identity.digest("hex");
}

/** Whether a push can finish `version`: a PENDING one holding only our files, or a READY one
 * holding exactly our files (the earlier push was killed after sealing). */
function continuable(version: ModelVersion, files: readonly LocalFile[]): boolean {
  const ours = new Map(files.map((f) => [f.path, `${f.sizeBytes}:${f.sha256}`]));
  const theirs = version.files.map((f) => [f.path, `${f.sizeBytes}:${f.sha256}`] as const);
  if (version.deleted) return false;
  const onlyOurs = theirs.every(([path, entry]) => ours.get(path) === entry);
  if (version.state === ModelVersionState.PENDING) return onlyOurs;
  return version.state === ModelVersionState.READY && onlyOurs && theirs.length === ours.size;
}

export async function push(
  client: RegistryClient,
  model: string,
  source: string,
  options: PushOptions = {},
): Promise<PushResult> {
  const name = parseModel(model);
  const files = await describeFiles(source, client.settings.parallelFiles);
  let version: ModelVersion;
  const journal = new Journal(join(client.settings.cacheDir, "pushes"));
  let key = "";
  let resumed = false;
  if (options.version !== undefined) {
    version = await client.getVersion(`${modelResource(name)}/versions/${BigInt(options.version)}`);
  } else {
    if (options.createModel !== false) await client.ensureModel(model);
    const draft = {
      description: options.description ?? "",
      params: options.params,
      metrics: options.metrics ?? {},
      tags: options.tags ?? {},
    };
    key = pushKey(modelResource(name), draft, files);
    const record = journal.load(key);
    const earlier = typeof record?.version === "string" ? record.version : "";
    const found = earlier ? await client.getVersion(earlier).catch((error: unknown) => {
      if (error instanceof NotFound) return undefined;
      throw error;
    }) : undefined;
    if (found !== undefined && continuable(found, files)) {
      version = found;
      resumed = true;
    } else {
      // One request id per create, noted before it is sent: a create retried after a lost
      // answer (or by the next run, after a kill) returns the same version.
      const requestId = typeof record?.request_id === "string" && !earlier ? record.request_id : randomUUID();
      journal.save(key, { request_id: requestId });
      version = await client.createVersion(model, draft, requestId);
      journal.save(key, { request_id: requestId, version: version.name });
    }
  }
  const uploader = new Uploader(client);
  const present = new Map(version.files.map((f) => [f.path, `${f.sizeBytes}:${f.sha256}`]));
  const isPresent = (file: LocalFile) => present.get(file.path) === `${file.sizeBytes}:${file.sha256}`;
  const needed = files.filter((file) => !isPresent(file));
  const stored = needed.length > 0 ? await uploader.storedBlobs(version.name, needed.map((f) => f.sha256)) : new Set();
  const reports = await mapLimited(files, client.settings.parallelFiles, async (file): Promise<PushedFile> => {
    const entry = { path: file.path, sizeBytes: file.sizeBytes, sha256: file.sha256 };
    if (isPresent(file)) {
      uploader.forget(version.name, file); // a session that finished before a kill
      return { ...entry, outcome: "present", sentBytes: 0, session: "", skippedBytes: file.sizeBytes, resumedStreams: 0 };
    }
    const { file: _, ...report } = await uploader.upload(version.name, file, {
      stored: stored.has(file.sha256),
      replace: options.replace ?? false,
    });
    return { ...entry, ...report };
  });
  version = await client.sealVersion(version.name);
  if (options.alias !== undefined) {
    await client.setAlias(model, options.alias, version.number);
    version = await client.getVersion(version.name);
  }
  if (key) journal.remove(key);
  const uploadedBytes = reports.reduce((sum, file) => sum + file.sentBytes, 0);
  const resentBytes = reports.reduce(
    (sum, file) => sum + Math.max(0, file.sentBytes - (file.sizeBytes - file.skippedBytes)),
    0,
  );
  return { version, files: reports, uploadedBytes, resentBytes, resumed };
}
