/**
 * Pull: a version's files into a local directory, each verified against its SHA-256.
 *
 * An alias is resolved once, so every file comes from the same version even if the alias moves
 * meanwhile. Blobs are downloaded into a staging directory inside the destination
 * (`.modelreg-partial`), verified, and only when every one is verified are the files placed under
 * their names: a failed pull places nothing, and a file under its final name is always complete.
 *
 * Before anything is fetched the destination is surveyed, as the Python SDK does
 * (modelreg/destination.py): the same bytes already there are kept; anything else under a path
 * the pull must write is *in the way* and refused (`DestinationInTheWay`, naming every path)
 * unless `force`; files the manifest does not name are never touched.
 */

import { copyFile, lstat, mkdir, realpath, rename, rm } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { RegistryClient } from "./client.js";
import { downloadFile } from "./downloads.js";
import { DestinationInTheWay, UnsafeManifest } from "./errors.js";
import type { ModelFile, ModelVersion } from "./gen/modelregistry/v1/model_pb.js";
import { sha256File } from "./local-files.js";
import { mapLimited } from "./parallel.js";

export const STAGING_DIR = ".modelreg-partial";

export interface PullOptions {
  /** Replace whatever is in the way (only those paths), once every file is verified. */
  force?: boolean;
}

export interface PulledFile {
  path: string;
  sizeBytes: number;
  sha256: string;
  /** "downloaded", "present" (the same bytes were there), or "copied" (same content as another file). */
  outcome: "downloaded" | "present" | "copied";
  /** Bytes that crossed the network for this file (more than its size after a broken stream). */
  receivedBytes: number;
  /** Broken download streams continued from the bytes already on disk. */
  resumedStreams: number;
}

export interface PullResult {
  version: ModelVersion;
  destination: string;
  files: PulledFile[];
}

/** Refuses a manifest path that could escape the destination or is unsafe on any system. */
export function checkManifestPath(path: string): void {
  const bad =
    path === "" ||
    path.length > 1024 ||
    path.startsWith("/") ||
    path.includes("\\") ||
    /[\x00-\x1f\x7f]/.test(path) ||
    path.split("/").some((segment) => segment === "" || segment === "." || segment === "..") ||
    /^[A-Za-z]:/.test(path);
  if (bad) throw new UnsafeManifest(`refusing to write manifest path ${JSON.stringify(path.slice(0, 64))}`);
}

function planTargets(root: string, files: readonly ModelFile[]): string[] {
  const paths = new Set(files.map((file) => file.path));
  return files.map((file) => {
    checkManifestPath(file.path);
    const segments = file.path.split("/");
    for (let depth = 1; depth < segments.length; depth++) {
      const parent = segments.slice(0, depth).join("/");
      if (paths.has(parent)) {
        throw new UnsafeManifest(
          `manifest path ${JSON.stringify(file.path)} needs ${JSON.stringify(parent)} to be a directory, ` +
            "but the manifest also lists it as a file",
        );
      }
    }
    return join(root, ...segments);
  });
}

async function kindOf(path: string): Promise<"none" | "file" | "directory" | "link" | "other"> {
  try {
    const info = await lstat(path);
    if (info.isSymbolicLink()) return "link";
    if (info.isFile()) return "file";
    if (info.isDirectory()) return "directory";
    return "other";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "none";
    throw error;
  }
}

/** The targets already holding the manifest's bytes, and the paths in the way of the others. */
async function survey(
  root: string,
  files: readonly ModelFile[],
  targets: readonly string[],
): Promise<{ present: Set<string>; inTheWay: Map<string, string> }> {
  const present = new Set<string>();
  const inTheWay = new Map<string, string>();
  for (const [index, target] of targets.entries()) {
    const file = files[index] as ModelFile;
    // Every directory on the way must be a directory (not a file, not a link leading elsewhere).
    for (let parent = dirname(target); parent !== root && parent.startsWith(root + sep); parent = dirname(parent)) {
      const kind = await kindOf(parent);
      if (kind !== "none" && kind !== "directory") inTheWay.set(parent, kind === "link" ? "a symbolic link" : "a file");
    }
    const kind = await kindOf(target);
    if (kind === "none") continue;
    if (kind === "file") {
      const { size } = await lstat(target);
      if (BigInt(size) === file.sizeBytes && (await sha256File(target)) === file.sha256) {
        present.add(target);
        continue;
      }
    }
    const found = { file: "a different file", directory: "a directory", link: "a symbolic link", other: "a special file" };
    inTheWay.set(target, found[kind]);
  }
  return { present, inTheWay };
}

/** Downloads the version `ref` (`ns/model@alias`, `ns/model/3`) into `destination`. */
export async function pull(
  client: RegistryClient,
  ref: string,
  destination: string,
  options: PullOptions = {},
): Promise<PullResult> {
  const version = await client.getVersion(ref);
  await mkdir(destination, { recursive: true });
  const root = await realpath(resolve(destination));
  const files = [...version.files];
  const targets = planTargets(root, files);
  const { present, inTheWay } = await survey(root, files, targets);
  if (inTheWay.size > 0 && !options.force) {
    const listed = [...inTheWay].slice(0, 10).map(([path, found]) => `${relative(root, path)} (${found})`);
    throw new DestinationInTheWay(
      `${root} holds other things where the pull must write: ${listed.join(", ")}` +
        (inTheWay.size > 10 ? ` and ${inTheWay.size - 10} more` : "") +
        "; pull into an empty directory, or force it to replace exactly these",
      [...inTheWay.keys()],
    );
  }

  // Each digest is downloaded once, however many files share it.
  const needed = new Map<string, ModelFile>();
  files.forEach((file, index) => {
    if (!present.has(targets[index] as string) && !needed.has(file.sha256)) needed.set(file.sha256, file);
  });
  const staging = join(root, STAGING_DIR);
  await mkdir(staging, { recursive: true });
  const received = new Map<string, { receivedBytes: number; resumedStreams: number }>();
  try {
    await mapLimited([...needed.values()], client.settings.parallelFiles, async (file) => {
      const report = await downloadFile(client, version.name, file, join(staging, file.sha256));
      received.set(file.sha256, report);
    });
    // Every blob is verified: only now are the paths in the way cleared (forced pulls only).
    for (const path of inTheWay.keys()) await rm(path, { recursive: true, force: true });
    const uses = new Map<string, number>();
    files.forEach((file, index) => {
      if (!present.has(targets[index] as string)) uses.set(file.sha256, (uses.get(file.sha256) ?? 0) + 1);
    });
    const pulled: PulledFile[] = [];
    for (const [index, file] of files.entries()) {
      const target = targets[index] as string;
      const entry = { path: file.path, sizeBytes: Number(file.sizeBytes), sha256: file.sha256 };
      if (present.has(target)) {
        pulled.push({ ...entry, outcome: "present", receivedBytes: 0, resumedStreams: 0 });
        continue;
      }
      await mkdir(dirname(target), { recursive: true });
      // A directory that already existed under the destination may be a link to elsewhere.
      const parent = await realpath(dirname(target));
      if (parent !== root && !parent.startsWith(root + sep)) {
        throw new UnsafeManifest(`${dirname(target)} leads outside ${root} (a symbolic link); refusing to write`);
      }
      const blob = join(staging, file.sha256);
      const left = (uses.get(file.sha256) ?? 1) - 1;
      uses.set(file.sha256, left);
      // The last file with a digest takes the blob itself; earlier ones get copies.
      if (left === 0) await rename(blob, target);
      else await copyFile(blob, target);
      // The first file with a digest reports its download; later ones are copies of it.
      const report = received.get(file.sha256);
      received.delete(file.sha256);
      pulled.push({
        ...entry,
        outcome: report ? "downloaded" : "copied",
        receivedBytes: report?.receivedBytes ?? 0,
        resumedStreams: report?.resumedStreams ?? 0,
      });
    }
    return { version, destination: root, files: pulled };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
