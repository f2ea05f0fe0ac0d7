/**
 * Push: local files become a sealed model version. The files are hashed (streamed), a PENDING
 * version is created (and the model, if needed), every file its manifest lacks is uploaded,
 * `parallelFiles` at a time (content the registry stores already is recorded without sending
 * a byte; large files go through resumable sessions), the version is sealed, and an alias
 * optionally pointed at it.
 */

import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import type { RegistryClient } from "./client.js";
import type { ModelVersion } from "./gen/modelregistry/v1/model_pb.js";
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
    // One request id for the create: a retry after a lost answer returns the same version.
    version = await client.createVersion(model, draft, randomUUID());
  }
  const uploader = new Uploader(client);
  const present = new Map(version.files.map((f) => [f.path, `${f.sizeBytes}:${f.sha256}`]));
  const isPresent = (file: LocalFile) => present.get(file.path) === `${file.sizeBytes}:${file.sha256}`;
  const needed = files.filter((file) => !isPresent(file));
  const stored = needed.length > 0 ? await uploader.storedBlobs(version.name, needed.map((f) => f.sha256)) : new Set();
  const reports = await mapLimited(files, client.settings.parallelFiles, async (file): Promise<PushedFile> => {
    const entry = { path: file.path, sizeBytes: file.sizeBytes, sha256: file.sha256 };
    if (isPresent(file)) {
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
  const uploadedBytes = reports.reduce((sum, file) => sum + file.sentBytes, 0);
  const resentBytes = reports.reduce(
    (sum, file) => sum + Math.max(0, file.sentBytes - (file.sizeBytes - file.skippedBytes)),
    0,
  );
  return { version, files: reports, uploadedBytes, resentBytes };
}
