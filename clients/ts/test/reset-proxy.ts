// A loopback TCP proxy that resets every open connection once so many bytes came back from the
// target (the download direction), a bounded number of times; then it only forwards.
// tests/integration/cutting_proxy.py does the same for the upload direction.
import { createConnection, createServer, type Server, type Socket } from "node:net";

export class ResetProxy {
  address = "";
  cutsDone = 0;
  #received = 0;
  readonly #open = new Set<Socket>();
  readonly #server: Server;

  constructor(
    private readonly target: string,
    private readonly cutEvery: number,
    private readonly cuts: number,
  ) {
    this.#server = createServer((client) => this.#connect(client));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.address = `127.0.0.1:${(this.#server.address() as { port: number }).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.#open) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #connect(client: Socket): void {
    const colon = this.target.lastIndexOf(":");
    const upstream = createConnection(Number(this.target.slice(colon + 1)), this.target.slice(0, colon));
    for (const socket of [client, upstream]) {
      this.#open.add(socket);
      socket.on("close", () => this.#open.delete(socket));
      socket.on("error", () => socket.destroy());
    }
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on("data", (data: Buffer) => {
      this.#received += data.length;
      if (this.cutsDone < this.cuts && this.#received >= (this.cutsDone + 1) * this.cutEvery) {
        this.cutsDone++;
        for (const socket of this.#open) socket.resetAndDestroy();
      }
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }
}
