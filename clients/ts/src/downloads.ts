/**
 * The download protocol (docs/artifact-protocol.md, "Download one file"): one file of a version
 * streamed into a temporary file, hashed on the way, continued from the bytes on disk after a
 * broken stream, and given its final name only once its SHA-256 matches the manifest.
 *
 * Memory stays bounded: each message is written (awaited) before the next is read, so HTTP/2
 * flow control holds the sender back while the disk is slow.
 */

import { createHash } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import type { RegistryClient } from "./client.js";
import { fromConnectError, IntegrityError } from "./errors.js";
import type { ModelFile } from "./gen/modelregistry/v1/model_pb.js";

export interface DownloadReport {
  /** Bytes that crossed the network (more than the file's size after a broken stream). */
  receivedBytes: number;
  /** Broken streams continued from the bytes already on disk. */
  resumedStreams: number;
}

/**
 * Downloads `file` of the version named `version` (by number: resolve an alias once, so every
 * file comes from one version) to `target`, through `${target}` + a temporary suffix.
 */
export async function downloadFile(
  client: RegistryClient,
  version: string,
  file: ModelFile,
  target: string,
): Promise<DownloadReport> {
  const temporary = `${target}.modelreg-partial`;
  const size = Number(file.sizeBytes);
  const hash = createHash("sha256");
  const handle = await open(temporary, "w");
  let position = 0;
  let received = 0;
  let attempts = 0;
  try {
    await client.retry(async () => {
      attempts++;
      const options = client.callOptions(client.streamTimeoutMs(size - position));
      const request = { modelVersion: version, path: file.path, offset: BigInt(position) };
      try {
        for await (const message of client.artifacts.downloadFile(request, options)) {
          if (message.file !== undefined) checkHeader(version, file, message.file);
          if (message.data.length === 0) continue;
          const offset = Number(message.offset);
          if (offset !== position || position + message.data.length > size) {
            throw new IntegrityError(
              `${file.path}: the server sent bytes ${offset}..${offset + message.data.length} while ` +
                `${position} was expected of ${size}`,
              "UNEXPECTED_OFFSET",
            );
          }
          await handle.write(message.data, 0, message.data.length, position);
          hash.update(message.data);
          position += message.data.length;
          received += message.data.length;
        }
      } catch (error) {
        throw fromConnectError(error);
      }
      if (position !== size) {
        throw new IntegrityError(`${file.path}: the download ended at byte ${position} of ${size}`, "SIZE_MISMATCH");
      }
    });
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  const digest = hash.digest("hex");
  if (digest !== file.sha256) {
    await rm(temporary, { force: true });
    throw new IntegrityError(
      `${file.path}: received bytes hash to ${digest}, but the manifest of ${version} records ${file.sha256}`,
      "DIGEST_MISMATCH",
    );
  }
  await rename(temporary, target);
  return { receivedBytes: received, resumedStreams: attempts - 1 };
}

function checkHeader(version: string, wanted: ModelFile, got: ModelFile): void {
  if (got.sizeBytes !== wanted.sizeBytes || got.sha256 !== wanted.sha256) {
    throw new IntegrityError(
      `${wanted.path}: the artifact service describes it as ${got.sizeBytes} bytes, sha256 ${got.sha256}, ` +
        `but the manifest of ${version} says ${wanted.sizeBytes} bytes, sha256 ${wanted.sha256}`,
      "MANIFEST_MISMATCH",
    );
  }
}

