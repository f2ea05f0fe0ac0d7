/**
 * Service addresses as the Python SDK reads them (modelreg_api/addresses.py): `host:port`, or a
 * comma-separated list of replicas (`10.0.0.1:50051,10.0.0.2:50051`), each optionally with a
 * scheme (`https://registry.example.com:443`). Without a scheme, TLS is used unless the address
 * is loopback (`MODELREG_TLS`: auto, true or false), as in modelreg_api/channels.py.
 */

import { isIP } from "node:net";

export const METADATA_ADDR_ENV = "MODELREG_METADATA_ADDR";
export const ARTIFACT_ADDR_ENV = "MODELREG_ARTIFACT_ADDR";
export const TLS_ENV = "MODELREG_TLS";
export const DEFAULT_METADATA_ADDR = "127.0.0.1:50051";
export const DEFAULT_ARTIFACT_ADDR = "127.0.0.1:50052";

export type TlsMode = "auto" | "on" | "off";

export function tlsMode(raw: string | undefined): TlsMode {
  const value = (raw ?? "").trim().toLowerCase() || "auto";
  if (value === "auto") return "auto";
  if (["true", "1", "yes", "on"].includes(value)) return "on";
  if (["false", "0", "no", "off"].includes(value)) return "off";
  throw new Error(`${TLS_ENV}=${JSON.stringify(value.slice(0, 64))} is not one of auto, true, false`);
}

function hostOf(address: string): string {
  const withoutScheme = address.replace(/^[a-z]+:\/\//, "");
  const host = withoutScheme.slice(0, withoutScheme.lastIndexOf(":")) || withoutScheme;
  return host.replace(/^\[|\]$/g, "");
}

export function isLoopback(address: string): boolean {
  return address.split(",").every((part) => {
    const host = hostOf(part.trim());
    if (host === "localhost") return true;
    if (isIP(host) === 4) return host.startsWith("127.");
    return host === "::1";
  });
}

/** The base URLs (`http://host:port` or `https://host:port`) of every replica in `address`. */
export function baseUrls(address: string, mode: TlsMode = "auto"): string[] {
  const parts = address
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (parts.length === 0) throw new Error("an empty service address");
  return parts.map((part) => {
    if (/^https?:\/\//.test(part)) return part.replace(/\/+$/, "");
    const tls = mode === "on" || (mode === "auto" && !isLoopback(part));
    return `${tls ? "https" : "http"}://${part}`;
  });
}
