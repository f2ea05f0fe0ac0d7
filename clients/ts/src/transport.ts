/**
 * The gRPC transport to one service: Connect's Node transport speaking the gRPC protocol over
 * HTTP/2 (h2c for `http://`, TLS for `https://`), the bearer credential on every call, and calls
 * spread round robin over the replicas of a comma-separated address list (as the Python SDK's
 * `round_robin` channels do), so a retry after UNAVAILABLE goes to the next replica.
 */

import { readFileSync } from "node:fs";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

export interface TransportOptions {
  /** Sent as `authorization: Bearer <token>`; empty: no credential (UNAUTHENTICATED). */
  token: string;
  /** PEM file of the certificate authority to trust for `https://` (default: the system's). */
  caFile?: string | undefined;
  /** PEM files of a client certificate and its key (mutual TLS). */
  clientCertFile?: string | undefined;
  clientKeyFile?: string | undefined;
  /** Deadline of a call that sets none. */
  defaultTimeoutMs: number;
}

/** A transport over several replicas, and the HTTP/2 sessions to close when done. */
export interface ServiceTransport {
  transport: Transport;
  close(): void;
}

export function serviceTransport(urls: string[], options: TransportOptions): ServiceTransport {
  const authorization: Interceptor = (next) => async (request) => {
    if (options.token) request.header.set("authorization", `Bearer ${options.token}`);
    return next(request);
  };
  const tls = {
    ...(options.caFile ? { ca: readFileSync(options.caFile) } : {}),
    ...(options.clientCertFile ? { cert: readFileSync(options.clientCertFile) } : {}),
    ...(options.clientKeyFile ? { key: readFileSync(options.clientKeyFile) } : {}),
  };
  const sessions: Http2SessionManager[] = [];
  const replicas = urls.map((baseUrl) => {
    const nodeOptions = baseUrl.startsWith("https:") ? tls : {};
    // Our own session manager, so `close()` can end the connection (an idle one is unref'ed
    // and never keeps the process alive anyway).
    const sessionManager = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000 }, nodeOptions);
    sessions.push(sessionManager);
    return createGrpcTransport({
      baseUrl,
      sessionManager,
      interceptors: [authorization],
      defaultTimeoutMs: options.defaultTimeoutMs,
    });
  });
  let next = 0;
  const pick = (): Transport => replicas[next++ % replicas.length] as Transport;
  const transport: Transport = {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      pick().unary(method, signal, timeoutMs, header, input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      pick().stream(method, signal, timeoutMs, header, input, contextValues),
  };
  return {
    transport,
    close: () => {
      for (const session of sessions) session.abort();
    },
  };
}
