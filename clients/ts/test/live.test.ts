// Live tests against a running registry. tests/clients/test_ts_client.py runs them with the
// pytest session's stack: MODELREG_METADATA_ADDR, MODELREG_ARTIFACT_ADDR and MODELREG_TOKEN (a
// global admin's credential), MODELREG_CUT_ARTIFACT_ADDR (a proxy that resets connections,
// tests/integration/cutting_proxy.py) and MODELREG_TS_PULL_BIN (the built modelreg-pull). They
// are skipped only when those variables are absent (a plain `npm test` on a laptop).
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import {
  FailedPrecondition,
  MetricDirection,
  ModelVersionState,
  NotFound,
  RegistryClient,
  Unauthenticated,
} from "../src/index.js";
import { ResetProxy } from "./reset-proxy.js";

const env = process.env;
const live = Boolean(env.MODELREG_METADATA_ADDR && env.MODELREG_ARTIFACT_ADDR && env.MODELREG_TOKEN);
const skip = live ? false : "no registry: set MODELREG_METADATA_ADDR, MODELREG_ARTIFACT_ADDR, MODELREG_TOKEN";
const MIB = 1024 * 1024;
const run = promisify(execFile);

const namespace = `ts-${randomUUID().slice(0, 8)}`;
const unique = (prefix: string) => `${namespace}/${prefix}-${randomUUID().slice(0, 8)}`;
const clients: RegistryClient[] = [];
function client(options: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const made = new RegistryClient({ retry: { attempts: 10, initialBackoffMs: 100, maxBackoffMs: 500 }, ...options });
  clients.push(made);
  return made;
}
after(() => clients.forEach((made) => made.close()));

// Every scratch directory a test makes, removed when the file's tests are done (tests leave no data).
const scratchDirs: string[] = [];
async function scratch(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}
after(() => Promise.all(scratchDirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function workdir(files: Record<string, Buffer>): Promise<string> {
  const dir = await scratch("modelreg-ts-live-");
  for (const [path, data] of Object.entries(files)) {
    await mkdir(join(dir, "in", path, ".."), { recursive: true });
    await writeFile(join(dir, "in", path), data);
  }
  return dir;
}

describe("against the registry", { skip }, () => {
  it("pushes a directory with params and metrics and pulls it back byte-identical", async () => {
    const registry = client();
    const weights = randomBytes(7 * MIB + 123); // resumable session (>= 5 MiB)
    const config = Buffer.from(`{"layers": 3, "run": "${randomUUID()}"}\n`); // one-shot UploadFile
    const dir = await workdir({ "weights.bin": weights, "conf/config.json": config });
    const model = unique("roundtrip");
    const pushed = await registry.push(model, join(dir, "in"), {
      params: { learning_rate: 0.01, layers: [64, 32] },
      metrics: { accuracy: 0.93 },
      alias: "staging",
    });
    assert.equal(pushed.version.state, ModelVersionState.READY);
    assert.deepEqual(pushed.version.params, { learning_rate: 0.01, layers: [64, 32] });
    assert.deepEqual(pushed.version.metrics, { accuracy: 0.93 });
    assert.deepEqual(pushed.version.aliases, ["staging"]);
    assert.deepEqual(
      pushed.files.map((f) => [f.path, f.outcome, f.sentBytes]),
      [["conf/config.json", "uploaded", config.length], ["weights.bin", "uploaded", weights.length]],
    );

    const pulled = await registry.pull(`${model}@staging`, join(dir, "out"));
    assert.equal(pulled.version.name, pushed.version.name);
    assert.deepEqual(await readFile(join(dir, "out", "weights.bin")), weights);
    assert.deepEqual(await readFile(join(dir, "out", "conf", "config.json")), config);

    // The same content again: the registry has the blobs, so no byte is sent.
    const again = await registry.push(unique("dedup"), join(dir, "in"));
    assert.deepEqual(again.files.map((f) => [f.outcome, f.sentBytes]), [["deduplicated", 0], ["deduplicated", 0]]);
    assert.equal(again.uploadedBytes, 0);

    // Pulling again into the same directory keeps the verified files as they are.
    const repeated = await registry.pull(pushed.version.name, join(dir, "out"));
    assert.deepEqual(repeated.files.map((f) => f.outcome), ["present", "present"]);
  });

  it("resumes an upload whose connection was reset, from the service's committed size", { skip: env.MODELREG_CUT_ARTIFACT_ADDR ? false : "no cutting proxy" }, async () => {
    const retries: string[] = [];
    const registry = client({ artifactAddr: env.MODELREG_CUT_ARTIFACT_ADDR, onRetry: (e) => retries.push(e.reason) });
    const size = Number(env.MODELREG_CUT_FILE_MIB ?? "24") * MIB;
    const weights = randomBytes(size);
    const dir = await workdir({ "weights.bin": weights });
    const pushed = await registry.push(unique("cut"), join(dir, "in"));
    const [file] = pushed.files;
    assert.ok(file);
    const cuts = Number(env.MODELREG_CUT_COUNT ?? "1");
    assert.equal(file.resumedStreams, cuts, `retried for ${retries.join(", ")}`);
    assert.ok(retries.every((reason) => ["STREAM_BROKEN", "CONNECTION_LOST", "WRITE_OFFSET_MISMATCH"].includes(reason)));
    assert.ok(file.sentBytes >= size);
    // Only what the service had not committed was sent again: at most the parts in flight, the
    // unfinished part and the transport's buffers per cut (as tests/integration/test_upload_faults.py).
    const resentPerCut = Number(env.MODELREG_CUT_RESENT_PER_CUT_MIB ?? "23") * MIB;
    assert.ok(pushed.resentBytes <= cuts * resentPerCut, `resent ${pushed.resentBytes}`);
    const pulled = await registry.pull(pushed.version.name, join(dir, "out"));
    assert.equal(pulled.files[0]?.sha256, file.sha256);
    assert.deepEqual(await readFile(join(dir, "out", "weights.bin")), weights);
  });

  it("resumes a download whose connection was reset, from the bytes on disk", async () => {
    const size = 24 * MIB;
    const weights = randomBytes(size);
    const dir = await workdir({ "weights.bin": weights });
    const pushed = await client().push(unique("cut-download"), join(dir, "in"));
    const proxy = await new ResetProxy(env.MODELREG_ARTIFACT_ADDR as string, 8 * MIB, 2).start();
    try {
      const pulled = await client({ artifactAddr: proxy.address }).pull(pushed.version.name, join(dir, "out"));
      assert.equal(proxy.cutsDone, 2);
      const [file] = pulled.files;
      assert.equal(file?.resumedStreams, 2);
      // Each new stream started where the bytes on disk ended: nothing was received twice.
      assert.equal(file?.receivedBytes, size);
    } finally {
      await proxy.stop();
    }
    assert.deepEqual(await readFile(join(dir, "out", "weights.bin")), weights);
  });

  it("continues the version and the upload session a killed push left", async () => {
    const cacheDir = await scratch("modelreg-ts-cache-");
    const size = 96 * MIB;
    const part = 16 * MIB; // the artifact service's default part: what it commits at a time
    const weights = randomBytes(size);
    const dir = await workdir({ "weights.bin": weights });
    const model = unique("killed");
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL("fixtures/push.ts", import.meta.url)), model, join(dir, "in")],
      { env: { ...env, MODELREG_CACHE_DIR: cacheDir }, stdio: "ignore" },
    );
    const exited = once(child, "exit");
    const registry = client({ cacheDir });
    // Kill the push once the service committed a part of the file (the session is in the journal).
    for (let committed = 0n; committed < BigInt(part); await sleep(20)) {
      assert.equal(child.exitCode, null, "the push finished before it could be killed");
      const notes = (await readdir(join(cacheDir, "uploads")).catch(() => [])).filter((n) => n.endsWith(".json"));
      if (notes.length === 0) continue;
      const note = JSON.parse(await readFile(join(cacheDir, "uploads", notes[0] as string), "utf8")) as { session: string };
      const session = await registry.call((o) => registry.artifacts.getUploadSession({ name: note.session }, o));
      committed = session.committedSize;
    }
    child.kill("SIGKILL");
    await exited;

    const pushed = await registry.push(model, join(dir, "in"));
    assert.equal(pushed.resumed, true);
    assert.match(pushed.version.name, /\/versions\/1$/); // no stray second version
    const [file] = pushed.files;
    assert.equal(file?.outcome, "resumed");
    assert.ok(file.skippedBytes >= part, `skipped ${file.skippedBytes}`);
    assert.ok(file.sentBytes <= size - file.skippedBytes, `sent ${file.sentBytes}`);
    assert.deepEqual(await readdir(join(cacheDir, "uploads")), []); // finished: nothing to resume
    await registry.pull(pushed.version.name, join(dir, "out"));
    assert.deepEqual(await readFile(join(dir, "out", "weights.bin")), weights);
  });

  it("reads the ErrorInfo reason and metadata of a refused protected-alias move", async () => {
    const registry = client();
    const model = unique("guarded");
    const dir = await workdir({ "model.bin": randomBytes(1024) });
    const pushed = await registry.push(model, join(dir, "in"), { metrics: { accuracy: 0.5 } });
    const alias = `namespaces/${model.replace("/", "/models/")}/aliases/production`;
    await registry.call((o) =>
      registry.metadata.protectAlias(
        {
          protection: {
            name: alias,
            noRegression: [{ metric: "accuracy", direction: MetricDirection.MAXIMIZE }],
          },
        },
        o,
      ),
    );
    const refused = await registry.setAlias(model, "production", pushed.version.number).then(
      () => assert.fail("the move to an unapproved version was accepted"),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof FailedPrecondition, String(refused));
    assert.equal(refused.reason, "PROTECTED_ALIAS_VERSION_NOT_APPROVED");
    assert.equal(refused.domain, "modelreg.dev");
    assert.equal(refused.metadata.alias, alias);
    assert.equal(refused.metadata.model_version, pushed.version.name);
    assert.match(refused.requestId, /.+/);
  });

  it("answers NOT_FOUND and UNAUTHENTICATED as typed errors", async () => {
    await assert.rejects(client().getVersion(`${unique("missing")}/1`), (error: unknown) => {
      assert.ok(error instanceof NotFound);
      return true;
    });
    await assert.rejects(client({ token: "mrt_0000000000000000_nope" }).getModel(unique("any")), Unauthenticated);
  });

  it("modelreg-pull fetches namespace/model@alias into a directory, and refuses one in the way", { skip: env.MODELREG_TS_PULL_BIN ? false : "modelreg-pull not built" }, async () => {
    const bin = env.MODELREG_TS_PULL_BIN as string;
    const registry = client();
    const data = randomBytes(2 * MIB);
    const dir = await workdir({ "w/data.bin": data });
    const model = unique("bin");
    const pushed = await registry.push(model, join(dir, "in"), { alias: "production" });
    const { stdout } = await run(process.execPath, [bin, `${model}@production`, join(dir, "out")]);
    const report = JSON.parse(stdout) as { version: string; files: Record<string, string> };
    assert.equal(report.version, pushed.version.name);
    assert.deepEqual(Object.keys(report.files), ["w/data.bin"]);
    assert.deepEqual(await readFile(join(dir, "out", "w", "data.bin")), data);

    await writeFile(join(dir, "out", "w", "data.bin"), "local work");
    const refused = await run(process.execPath, [bin, `${model}@production`, join(dir, "out")]).then(
      () => assert.fail("pulled over a local file"),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(refused.code, 4);
    assert.match(refused.stderr, /DESTINATION_NOT_EMPTY/);
    assert.equal(await readFile(join(dir, "out", "w", "data.bin"), "utf8"), "local work");
  });
});
