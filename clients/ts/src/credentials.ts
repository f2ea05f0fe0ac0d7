/**
 * Where the client finds the credential it presents as `authorization: Bearer <credential>`.
 * The same sources as the Python SDK (clients/python/modelreg/credentials.py), first set wins:
 *
 * 1. the `token` option of the client;
 * 2. `MODELREG_TOKEN`, the credential itself (CI secrets);
 * 3. `MODELREG_TOKEN_FILE`, a file holding it (a mounted Kubernetes secret);
 * 4. the credentials file `modelreg login` writes, `${XDG_CONFIG_HOME:-~/.config}/modelreg/credentials`
 *    (JSON keyed by metadata address), refused while group or others can access it;
 * 5. only for a loopback metadata address: the local stack's admin credential,
 *    `${MODELREG_DATA_DIR:-.data}/admin.token`, if that file exists.
 *
 * A source that is set but unusable is an error, never a silent step to the next source:
 * falling through would act as somebody else.
 */

import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { isLoopback } from "./addresses.js";
import { CredentialError } from "./errors.js";

export const TOKEN_ENV = "MODELREG_TOKEN";
export const TOKEN_FILE_ENV = "MODELREG_TOKEN_FILE";
export const DATA_DIR_ENV = "MODELREG_DATA_DIR";

export interface Credential {
  token: string;
  /** Where it came from, for messages (never the token itself). */
  source: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** `token` without surrounding whitespace; refused when it cannot be a header value. */
export function checkedToken(token: string, source: string): string {
  const trimmed = token.trim();
  if (trimmed === "") throw new CredentialError(`${source} is empty`, "EMPTY_CREDENTIAL");
  // Header values are printable ASCII: a pasted secret with a line break would otherwise fail
  // inside the transport with an obscure message.
  if (!/^[\x21-\x7e]+$/.test(trimmed)) {
    throw new CredentialError(
      `${source} is not a credential (it contains spaces, line breaks or non-ASCII characters)`,
      "MALFORMED_CREDENTIAL",
    );
  }
  return trimmed;
}

function readTokenFile(path: string, source: string): Credential {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new CredentialError(`${source}: cannot read ${path} (${why})`, "UNREADABLE_CREDENTIAL");
  }
  return { token: checkedToken(text, `${source} ${path}`), source: `${source} ${path}` };
}

export function credentialsPath(env: Env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "modelreg", "credentials");
}

function fromCredentialsFile(path: string, metadataAddr: string): Credential | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CredentialError(`credentials file ${path} cannot be read`, "UNREADABLE_CREDENTIAL");
  }
  if (mode & 0o077) {
    throw new CredentialError(
      `credentials file ${path} is accessible by group or others (mode ${mode.toString(8)}), so it is ` +
        `not used: run 'chmod 600 ${path}'`,
      "CREDENTIALS_FILE_TOO_OPEN",
    );
  }
  let logins: unknown;
  try {
    logins = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    logins = undefined;
  }
  if (typeof logins !== "object" || logins === null) {
    throw new CredentialError(
      `credentials file ${path} is not what 'modelreg login' writes`,
      "MALFORMED_CREDENTIAL",
    );
  }
  const entry = (logins as Record<string, { token?: unknown }>)[metadataAddr];
  if (entry === undefined) return undefined;
  const source = `credentials file ${path}`;
  if (typeof entry.token !== "string") {
    throw new CredentialError(`${source} is not what 'modelreg login' writes`, "MALFORMED_CREDENTIAL");
  }
  return { token: checkedToken(entry.token, source), source };
}

/** The credential for the registry at `metadataAddr` from sources 2 to 5, or undefined. */
export function findCredential(env: Env, metadataAddr: string): Credential | undefined {
  const token = env[TOKEN_ENV];
  if (token) return { token: checkedToken(token, TOKEN_ENV), source: TOKEN_ENV };
  const tokenFile = env[TOKEN_FILE_ENV];
  if (tokenFile) return readTokenFile(tokenFile, TOKEN_FILE_ENV);
  const stored = fromCredentialsFile(credentialsPath(env), metadataAddr);
  if (stored !== undefined) return stored;
  if (isLoopback(metadataAddr)) {
    const admin = join(env[DATA_DIR_ENV] || ".data", "admin.token");
    let exists = false;
    try {
      exists = statSync(admin).isFile();
    } catch {
      exists = false;
    }
    if (exists) return readTokenFile(admin, "the local stack's admin credential");
  }
  return undefined;
}
