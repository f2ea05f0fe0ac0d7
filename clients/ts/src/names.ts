/**
 * Resource names (`namespaces/{ns}/models/{model}/versions/{n}`, `.../aliases/{alias}`) and the
 * short references people type: `ns/model`, `ns/model/3`, `ns/model@production`.
 */

import { InvalidArgument, registryError } from "./errors.js";
import { Code } from "@connectrpc/connect";

// The services' identifier rules (modelreg_api/names.py); the services check them again.
const NAMESPACE_ID = "[a-z][a-z0-9-]{0,62}";
const MODEL_ID = "[a-z0-9][a-z0-9._-]{0,127}";
const ALIAS_ID = "[a-z][a-z0-9_-]{0,62}";
const PREFIX = `^(?:namespaces/)?(${NAMESPACE_ID})/(?:models/)?(${MODEL_ID})`;
const MODEL = new RegExp(`${PREFIX}$`);
const VERSION = new RegExp(`${PREFIX}(?:/versions/|/)(\\d{1,18})$`);
const ALIAS = new RegExp(`${PREFIX}(?:/aliases/|@)(${ALIAS_ID})$`);

export interface ModelName {
  namespace: string;
  model: string;
}

export type VersionRef =
  | { kind: "version"; name: string; model: ModelName; number: bigint }
  | { kind: "alias"; name: string; model: ModelName; alias: string };

function refused(field: string, value: string, expected: string): InvalidArgument {
  const shown = JSON.stringify(value.slice(0, 64)) + (value.length > 64 ? ` (${value.length} characters)` : "");
  return registryError(Code.InvalidArgument, `${field}: ${shown} is not ${expected}`, "INVALID_ARGUMENT", {
    fieldViolations: [{ field, description: `not ${expected}`, reason: "INVALID_ARGUMENT" }],
  }) as InvalidArgument;
}

export function modelResource(name: ModelName): string {
  return `namespaces/${name.namespace}/models/${name.model}`;
}

/** `ns/model` or `namespaces/ns/models/model`. */
export function parseModel(ref: string): ModelName {
  const match = MODEL.exec(ref);
  if (!match) throw refused("model", ref, "a model (namespace/model)");
  return { namespace: match[1] as string, model: match[2] as string };
}

/** `ns/model/3`, `ns/model@alias`, or either resource name. */
export function parseVersionRef(ref: string): VersionRef {
  const version = VERSION.exec(ref);
  if (version) {
    const model = { namespace: version[1] as string, model: version[2] as string };
    const number = BigInt(version[3] as string);
    return { kind: "version", name: `${modelResource(model)}/versions/${number}`, model, number };
  }
  const alias = ALIAS.exec(ref);
  if (alias) {
    const model = { namespace: alias[1] as string, model: alias[2] as string };
    const id = alias[3] as string;
    return { kind: "alias", name: `${modelResource(model)}/aliases/${id}`, model, alias: id };
  }
  throw refused("version", ref, "a version (namespace/model/N) or an alias (namespace/model@alias)");
}
