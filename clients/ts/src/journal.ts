/**
 * Notes in the cache directory that let a transfer interrupted by a killed process continue:
 * one JSON file per key, in the Python SDK's layout (modelreg/journal.py). Upload notes have the
 * SDK's keys and records, so a push into the same version (`version` option) continues a session
 * either client left; push notes have keys of their own (the SDK hashes serialized protobuf).
 *
 * - `<cache>/uploads/<key>.json`: which upload session holds the committed bytes of a file
 *   (key: SHA-256 of `version \0 path \0 sha256`);
 * - `<cache>/pushes/<key>.json`: which version a push of exactly this content and metadata
 *   created, and the request id of its create.
 *
 * A note only saves work: the service is asked before any note is trusted, so a journal that
 * cannot be read or written (a read-only cache, a torn file) costs the resumption, never the
 * transfer.
 */

import { createHash, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const CACHE_DIR_ENV = "MODELREG_CACHE_DIR";

export function defaultCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env[CACHE_DIR_ENV]) return env[CACHE_DIR_ENV];
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "modelreg");
}

export type JournalRecord = Record<string, unknown>;

export class Journal {
  constructor(readonly root: string) {}

  /** The record saved under `key`; undefined when there is none or it cannot be read. */
  load(key: string): JournalRecord | undefined {
    try {
      const record: unknown = JSON.parse(readFileSync(join(this.root, `${key}.json`), "utf8"));
      return typeof record === "object" && record !== null && !Array.isArray(record)
        ? (record as JournalRecord)
        : undefined;
    } catch {
      return undefined;
    }
  }

  /** Replaces the record whole (write, then rename), so a reader never sees half of one. */
  save(key: string, record: JournalRecord): void {
    try {
      mkdirSync(this.root, { recursive: true });
      const temporary = join(this.root, `.${key}.${randomUUID()}`);
      writeFileSync(temporary, JSON.stringify(record));
      renameSync(temporary, join(this.root, `${key}.json`));
    } catch {
      // A cache we cannot write costs the resumption only.
    }
  }

  remove(key: string): void {
    try {
      rmSync(join(this.root, `${key}.json`), { force: true });
    } catch {
      // As above.
    }
  }
}

/** The upload journal's key for a file: its version, path and content (as the Python SDK's). */
export function uploadKey(version: string, path: string, sha256: string): string {
  return createHash("sha256").update(`${version}\0${path}\0${sha256}`).digest("hex");
}
