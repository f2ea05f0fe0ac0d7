#!/usr/bin/env node
/**
 * `modelreg-pull [--force] NAMESPACE/MODEL@ALIAS DIR`: a version's files into DIR, each verified
 * against its SHA-256 (for an init container: nothing but Node and this package needed).
 * Prints one JSON line (the version and every file) on success; errors are one line on stderr.
 * Exit codes as the `modelreg` CLI's: 0 ok, 1 failure, 2 usage, 3 not found, 4 conflict (also a
 * destination holding other files), 5 integrity, 6 unavailable, 7 denied, 8 not authenticated.
 */

import { Code } from "@connectrpc/connect";
import { RegistryClient } from "../client.js";
import { DestinationInTheWay, IntegrityError, ModelregError, RegistryError, UnsafeManifest } from "../errors.js";

const USAGE = `usage: modelreg-pull [--force] NAMESPACE/MODEL@ALIAS|NAMESPACE/MODEL/NUMBER DIR

environment: MODELREG_METADATA_ADDR, MODELREG_ARTIFACT_ADDR, MODELREG_TOKEN or
MODELREG_TOKEN_FILE, MODELREG_TLS (auto|true|false), MODELREG_TLS_CA_FILE`;

const EXIT_BY_CODE: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 2,
  [Code.OutOfRange]: 2,
  [Code.NotFound]: 3,
  [Code.AlreadyExists]: 4,
  [Code.FailedPrecondition]: 4,
  [Code.Aborted]: 4,
  [Code.DataLoss]: 5,
  [Code.Unavailable]: 6,
  [Code.DeadlineExceeded]: 6,
  [Code.PermissionDenied]: 7,
  [Code.Unauthenticated]: 8,
};

function exitCode(error: unknown): number {
  if (error instanceof RegistryError) return EXIT_BY_CODE[error.code] ?? 1;
  if (error instanceof DestinationInTheWay || error instanceof UnsafeManifest) return 4;
  if (error instanceof IntegrityError) return 5;
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const force = argv.includes("--force");
  const args = argv.filter((arg) => arg !== "--force");
  if (args.includes("-h") || args.includes("--help")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.length !== 2 || args.some((arg) => arg.startsWith("-"))) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const [ref, destination] = args as [string, string];
  const client = new RegistryClient();
  try {
    const pulled = await client.pull(ref, destination, { force });
    const files = Object.fromEntries(pulled.files.map((file) => [file.path, file.sha256]));
    process.stdout.write(
      `${JSON.stringify({ version: pulled.version.name, destination: pulled.destination, files })}\n`,
    );
    return 0;
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const reason = error instanceof ModelregError ? ` [${error.reason}]` : "";
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`modelreg-pull: error${reason}: ${message}\n`);
    process.exitCode = exitCode(error);
  },
);
