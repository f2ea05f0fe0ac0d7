/**
 * The TypeScript leg of the three-language conformance test (tests/clients/test_conformance.py;
 * the contract is in docs/clients.md, "Conformance", and the same as
 * tests/clients/python_scenario.py and clients/go/cmd/conformance):
 *
 *     tsx conformance/scenario.ts run MODEL SOURCE_DIR DEST_DIR
 *     tsx conformance/scenario.ts pull VERSION_REF DEST_DIR
 *
 * `run` pushes SOURCE_DIR as a new version of MODEL with the scenario's params and metrics and
 * moves the alias `staging` to it (the test sends the upload through a proxy that cuts it, so
 * the push resumes), pulls `MODEL@staging` into DEST_DIR, then protects `production` and reports
 * the status and ErrorInfo reason of the refused move to the unapproved version. `pull` pulls a
 * version. Both print one JSON line and exit 0, or print the error on stderr and exit 1.
 * Addresses and the credential come from MODELREG_METADATA_ADDR, MODELREG_ARTIFACT_ADDR and
 * MODELREG_TOKEN.
 */

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { codeName, ModelregError, RegistryClient, RegistryError, type ModelVersion } from "../src/index.js";

// The scenario's fixed inputs: the same in every language.
const PARAMS: JsonObject = { learning_rate: 0.001, layers: [64, 32], optimizer: { name: "adam" } };
const METRICS = { accuracy: 0.93, loss: 0.12 };
const MOVED_ALIAS = "staging";
const PROTECTED_ALIAS = "production";
const LANGUAGE = "ts";

/** The pulled files hashed again on disk: the contract reports what is there. */
async function digests(root: string, version: ModelVersion): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const file of version.files) {
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(join(root, ...file.path.split("/")))) hash.update(chunk as Buffer);
    found[file.path] = hash.digest("hex");
  }
  return found;
}

async function scenario(registry: RegistryClient, model: string, source: string, dest: string): Promise<object> {
  const pushed = await registry.push(model, source, {
    description: `conformance ${LANGUAGE}`,
    params: PARAMS,
    metrics: METRICS,
    alias: MOVED_ALIAS,
  });
  const version = pushed.version;
  const pulled = await registry.pull(`${model}@${MOVED_ALIAS}`, dest);
  const aliasName = `${version.name.slice(0, version.name.lastIndexOf("/versions/"))}/aliases/${PROTECTED_ALIAS}`;
  await registry.call((o) => registry.metadata.protectAlias({ protection: { name: aliasName } }, o));
  let refused: RegistryError;
  try {
    await registry.setAlias(model, PROTECTED_ALIAS, version.number);
    throw new Error("moving the protected alias was not refused");
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error;
    refused = error;
  }
  return {
    language: LANGUAGE,
    model_version: version.name,
    alias: MOVED_ALIAS,
    params: version.params ?? {},
    metrics: version.metrics,
    files: Object.fromEntries(pushed.files.map((f) => [f.path, { sha256: f.sha256, size_bytes: f.sizeBytes }])),
    resumed_streams: pushed.files.reduce((sum, f) => sum + f.resumedStreams, 0),
    pulled_model_version: pulled.version.name,
    pulled: await digests(dest, pulled.version),
    protected_alias_code: codeName(refused.code),
    protected_alias_reason: refused.reason,
  };
}

async function pull(registry: RegistryClient, ref: string, dest: string): Promise<object> {
  const pulled = await registry.pull(ref, dest);
  return { language: LANGUAGE, model_version: pulled.version.name, pulled: await digests(dest, pulled.version) };
}

async function main(args: string[]): Promise<number> {
  const usage = "usage: scenario.ts run MODEL SOURCE_DIR DEST_DIR | scenario.ts pull VERSION_REF DEST_DIR";
  const [command, ...rest] = args;
  if (!((command === "run" && rest.length === 3) || (command === "pull" && rest.length === 2))) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const registry = new RegistryClient();
  try {
    const [first, second, third] = rest as [string, string, string];
    const result =
      command === "run" ? await scenario(registry, first, second, third) : await pull(registry, first, second);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } finally {
    registry.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const reason = error instanceof ModelregError ? ` [${error.reason}]` : "";
    process.stderr.write(`scenario.ts: error${reason}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
