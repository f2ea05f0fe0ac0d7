// Unit tests: no registry needed. `npm test` (node --test with tsx).
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, symlink, writeFile, chmod } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  baseUrls,
  describeFiles,
  FailedPrecondition,
  findCredential,
  fromConnectError,
  InvalidArgument,
  isLoopback,
  parseModel,
  parseVersionRef,
  RegistryClient,
  Unavailable,
  withRetries,
} from "../src/index.js";
import { checkManifestPath } from "../src/pulls.js";
import { mapLimited } from "../src/parallel.js";
import { CredentialError, UnsafeManifest } from "../src/errors.js";

// Every scratch directory a test makes, removed when the file's tests are done (tests leave no data).
const scratchDirs: string[] = [];
async function scratch(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}
after(() => Promise.all(scratchDirs.map((dir) => rm(dir, { recursive: true, force: true }))));

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
// Serialized by Python's googleapis-common-protos (the services' encoder):
// ErrorInfo(reason="WRITE_OFFSET_MISMATCH", domain="modelreg.dev",
//           metadata={"committed_size": "123", "path": "w.bin"})
const ERROR_INFO = hex(
  "0a1557524954455f4f46465345545f4d49534d41544348120c6d6f64656c7265672e6465761a150a0e636f6d6d69747465645f73697a6512033132331a0d0a04706174681205772e62696e",
);
// BadRequest(field_violations=[FieldViolation(field="data", description="too large", reason="CHUNK_TOO_LARGE")])
const BAD_REQUEST = hex("0a220a04646174611209746f6f206c617267651a0f4348554e4b5f544f4f5f4c41524745");

describe("errors", () => {
  it("decodes the ErrorInfo reason, metadata, BadRequest and request id of a status", () => {
    const status = new ConnectError("write_offset 0 but the session continues at 123", Code.InvalidArgument, {
      "x-request-id": "req-1",
    });
    // As the transport stores details it read from `grpc-status-details-bin`.
    status.details.push(
      { type: "google.rpc.ErrorInfo", value: ERROR_INFO },
      { type: "google.rpc.BadRequest", value: BAD_REQUEST },
    );
    const error = fromConnectError(status);
    assert.ok(error instanceof InvalidArgument);
    assert.equal(error.reason, "WRITE_OFFSET_MISMATCH");
    assert.equal(error.domain, "modelreg.dev");
    assert.deepEqual(error.metadata, { committed_size: "123", path: "w.bin" });
    assert.deepEqual(error.fieldViolations, [{ field: "data", description: "too large", reason: "CHUNK_TOO_LARGE" }]);
    assert.equal(error.requestId, "req-1");
    assert.equal(error.message, "write_offset 0 but the session continues at 123");
  });

  it("names the status when there is no ErrorInfo, and a reset connection is UNAVAILABLE", () => {
    const plain = fromConnectError(new ConnectError("no", Code.FailedPrecondition));
    assert.ok(plain instanceof FailedPrecondition);
    assert.equal(plain.reason, "FAILED_PRECONDITION");
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    const lost = fromConnectError(new ConnectError("read ECONNRESET", Code.Aborted, undefined, undefined, reset));
    assert.ok(lost instanceof Unavailable);
    assert.equal(lost.reason, "CONNECTION_LOST");
  });
});

describe("retries", () => {
  it("retries UNAVAILABLE only, with backoff, until the attempts are spent", async () => {
    const policy = { attempts: 3, initialBackoffMs: 1, maxBackoffMs: 2, multiplier: 2 };
    let calls = 0;
    const retried: string[] = [];
    await assert.rejects(
      withRetries(policy, async () => {
        calls++;
        throw new Unavailable("down", "STORE_UNAVAILABLE", Code.Unavailable);
      }, (error) => retried.push(error.reason)),
      Unavailable,
    );
    assert.equal(calls, 3);
    assert.deepEqual(retried, ["STORE_UNAVAILABLE", "STORE_UNAVAILABLE"]);
    calls = 0;
    await assert.rejects(
      withRetries(policy, async () => {
        calls++;
        throw new FailedPrecondition("sealed", "VERSION_SEALED", Code.FailedPrecondition);
      }),
      FailedPrecondition,
    );
    assert.equal(calls, 1);
    assert.equal(await withRetries(policy, async (attempt) => (attempt < 2 ? Promise.reject(new Unavailable("x", "X", Code.Unavailable)) : "ok")), "ok");
  });

  it("a service that is not listening is UNAVAILABLE after the client retried", async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address() as { port: number };
        server.close(() => resolve(address.port));
      });
    });
    const retried: number[] = [];
    const client = new RegistryClient({
      metadataAddr: `127.0.0.1:${port}`,
      artifactAddr: `127.0.0.1:${port}`,
      token: "t",
      retry: { attempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 },
      onRetry: (_, delay) => retried.push(delay),
    });
    try {
      await assert.rejects(client.getModel("team/model"), Unavailable);
      assert.equal(retried.length, 2);
    } finally {
      client.close();
    }
  });
});

describe("settings", () => {
  it("keeps upload messages within the protocol's 64 KiB..2 MiB", () => {
    const env = { MODELREG_TOKEN: "t" };
    assert.equal(new RegistryClient({ env, chunkBytes: 10 }).settings.chunkBytes, 64 * 1024);
    assert.equal(new RegistryClient({ env, chunkBytes: 64 << 20 }).settings.chunkBytes, 2 << 20);
    assert.equal(new RegistryClient({ env }).settings.chunkBytes, 1 << 20);
  });

  it("uses TLS unless the address is loopback, and balances over a list", () => {
    assert.deepEqual(baseUrls("127.0.0.1:50051,127.0.0.2:50051"), ["http://127.0.0.1:50051", "http://127.0.0.2:50051"]);
    assert.deepEqual(baseUrls("registry.example.com:443"), ["https://registry.example.com:443"]);
    assert.deepEqual(baseUrls("localhost:1", "on"), ["https://localhost:1"]);
    assert.deepEqual(baseUrls("registry:80", "off"), ["http://registry:80"]);
    assert.ok(isLoopback("[::1]:50051"));
    assert.ok(!isLoopback("10.0.0.1:50051"));
  });

  it("parses model, version and alias references", () => {
    assert.deepEqual(parseModel("fraud/detector"), { namespace: "fraud", model: "detector" });
    const alias = parseVersionRef("fraud/detector@production");
    assert.equal(alias.name, "namespaces/fraud/models/detector/aliases/production");
    const version = parseVersionRef("namespaces/fraud/models/detector/versions/7");
    assert.equal(version.kind === "version" && version.number, 7n);
    assert.throws(() => parseVersionRef("fraud/../x"), InvalidArgument);
  });
});

describe("credentials", () => {
  it("takes the first source that is set, and refuses one that is set but unusable", async () => {
    const dir = await scratch("modelreg-ts-");
    const file = join(dir, "token");
    await writeFile(file, "mrt_abc_def\n");
    assert.deepEqual(findCredential({ MODELREG_TOKEN: " t1 ", MODELREG_TOKEN_FILE: file }, "10.0.0.1:1"), {
      token: "t1",
      source: "MODELREG_TOKEN",
    });
    assert.equal(findCredential({ MODELREG_TOKEN_FILE: file }, "10.0.0.1:1")?.token, "mrt_abc_def");
    await writeFile(file, "\n");
    assert.throws(() => findCredential({ MODELREG_TOKEN_FILE: file }, "10.0.0.1:1"), CredentialError);
    assert.throws(() => findCredential({ MODELREG_TOKEN_FILE: join(dir, "missing") }, "x:1"), CredentialError);

    const config = join(dir, "config");
    await mkdir(join(config, "modelreg"), { recursive: true });
    const stored = join(config, "modelreg", "credentials");
    await writeFile(stored, JSON.stringify({ "10.0.0.1:1": { token: "from-login" } }));
    await chmod(stored, 0o644);
    assert.throws(() => findCredential({ XDG_CONFIG_HOME: config }, "10.0.0.1:1"), /group or others/);
    await chmod(stored, 0o600);
    assert.equal(findCredential({ XDG_CONFIG_HOME: config }, "10.0.0.1:1")?.token, "from-login");

    // The local stack's admin credential is used for a loopback registry only.
    await writeFile(join(dir, "admin.token"), "admin-secret\n");
    const local = { XDG_CONFIG_HOME: config, MODELREG_DATA_DIR: dir };
    assert.equal(findCredential(local, "127.0.0.1:50051")?.token, "admin-secret");
    assert.equal(findCredential(local, "10.9.9.9:50051"), undefined);
  });
});

describe("local files and manifests", () => {
  it("lists a directory's files with /-separated paths and their SHA-256, and refuses links", async () => {
    const dir = await scratch("modelreg-ts-");
    await mkdir(join(dir, "sub"));
    await writeFile(join(dir, "sub", "b.txt"), "hello\n");
    await writeFile(join(dir, "a.bin"), "");
    const files = await describeFiles(dir, 2);
    assert.deepEqual(
      files.map(({ path, sizeBytes, sha256 }) => ({ path, sizeBytes, sha256 })),
      [
        { path: "a.bin", sizeBytes: 0, sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { path: "sub/b.txt", sizeBytes: 6, sha256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" },
      ],
    );
    await symlink("/etc/passwd", join(dir, "link"));
    await assert.rejects(describeFiles(dir, 2), /not a regular file/);
  });

  it("refuses manifest paths that could escape the destination", () => {
    for (const path of ["../x", "/etc/passwd", "a/../../b", "a\\b", "C:x", "a//b", "", "a/./b"]) {
      assert.throws(() => checkManifestPath(path), UnsafeManifest, path);
    }
    checkManifestPath("weights/model.bin");
  });

  it("runs at most `limit` tasks at once, results in order, the first error wins", async () => {
    let running = 0;
    let peak = 0;
    const results = await mapLimited([1, 2, 3, 4, 5, 6], 2, async (n) => {
      peak = Math.max(peak, ++running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return n * 10;
    });
    assert.deepEqual(results, [10, 20, 30, 40, 50, 60]);
    assert.equal(peak, 2);
    await assert.rejects(mapLimited([1, 2], 2, async (n) => { if (n === 2) throw new Error("two"); return n; }), /two/);
  });
});
