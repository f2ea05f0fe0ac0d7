/**
 * The files a push sends: a single file, or every regular file under a directory, each with the
 * path it gets in the version (relative, `/`-separated) and its SHA-256, hashed as a stream.
 */

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";
import { LocalFileError } from "./errors.js";
import { mapLimited } from "./parallel.js";

export interface LocalFile {
  /** The path inside the version, e.g. `weights/model.bin`. */
  path: string;
  /** Where the bytes are on this machine. */
  source: string;
  sizeBytes: number;
  sha256: string;
}

const READ_BYTES = 1024 * 1024;

/** The SHA-256 (lowercase hex) of a file, read 1 MiB at a time. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: READ_BYTES })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

async function walk(root: string, directory: string, found: string[]): Promise<void> {
  const entries = await readdir(directory, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = join(directory, entry.name);
    if (entry.isDirectory()) await walk(root, full, found);
    else if (entry.isFile()) found.push(full);
    else {
      // A link could pull in files from anywhere; a socket or device has no content to push.
      throw new LocalFileError(
        `${relative(root, full)} is not a regular file or directory (a link?); push its target instead`,
        "NOT_A_REGULAR_FILE",
      );
    }
  }
}

/** Every file under `source` (or `source` itself), hashed `parallel` at a time. */
export async function describeFiles(source: string, parallel: number): Promise<LocalFile[]> {
  let info;
  try {
    info = await lstat(source);
  } catch {
    throw new LocalFileError(`${source} does not exist`, "NOT_FOUND");
  }
  let paths: Array<[string, string]>;
  if (info.isFile()) {
    paths = [[basename(source), source]];
  } else if (info.isDirectory()) {
    const found: string[] = [];
    await walk(source, source, found);
    paths = found.map((full) => [relative(source, full).split(sep).join("/"), full]);
  } else {
    throw new LocalFileError(`${source} is not a regular file or directory`, "NOT_A_REGULAR_FILE");
  }
  if (paths.length === 0) throw new LocalFileError(`${source} holds no files`, "EMPTY_DIRECTORY");
  return mapLimited(paths, parallel, async ([path, full]) => {
    const { size } = await lstat(full);
    return { path, source: full, sizeBytes: size, sha256: await sha256File(full) };
  });
}
