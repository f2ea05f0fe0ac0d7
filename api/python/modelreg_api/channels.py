"""Channels to the registry's services: TLS or plaintext, decided per address.

`MODELREG_TLS=auto` (the default) uses TLS for every address that is not loopback, so the local
stack (`make run`, 127.0.0.1) needs no certificates while a remote registry is never reached in
plaintext by accident (bearer credentials travel in every call's metadata). A private CA is
trusted through `MODELREG_TLS_CA_FILE`; without it the system's roots are used. A client
certificate (`MODELREG_TLS_CLIENT_CERT_FILE` and `_KEY_FILE`) is presented for mTLS.

The same variables with another prefix configure other clients: the artifact service reaches the
metadata service with `MODELREG_METADATA_TLS*`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc

from modelreg_api.addresses import grpc_target, is_loopback
from modelreg_api.errors import ModelregError
from modelreg_api.tracing import client_interceptors

TLS_ENV = "MODELREG_TLS"

TlsMode = Literal["auto", "on", "off"]
_MODES: dict[str, TlsMode] = {
    "auto": "auto",
    **dict.fromkeys(("true", "1", "yes", "on"), "on"),
    **dict.fromkeys(("false", "0", "no", "off"), "off"),
}
_CERTIFICATE = "certificate"
_PRIVATE_KEY = "private key"


class TlsConfigError(ModelregError):
    """TLS settings that cannot work; `problems` lists each, naming its variable or file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid TLS settings: " + "; ".join(problems), reason="TLS_CONFIG")
        self.problems = problems


def _read_pem(path: Path, kind: str) -> bytes:
    """The PEM file's bytes, or a TlsConfigError that says what is wrong with it.

    gRPC itself reports a bad file only as a failed handshake, long after the mistake was made.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    if kind == _PRIVATE_KEY:
        if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
            raise TlsConfigError([f"{path} holds an encrypted private key; gRPC needs it unencrypted"])
        if b"PRIVATE KEY-----" not in data:
            raise TlsConfigError([f"{path} holds no PEM private key"])
    elif b"-----BEGIN CERTIFICATE-----" not in data:
        raise TlsConfigError([f"{path} holds no PEM certificate"])
    return data


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How a client secures its channels: `mode` "auto" (TLS unless the address is loopback),
    "on" or "off"; the CA to trust (None: the system's roots); an optional client certificate."""

    mode: TlsMode = "auto"
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "on", "off"):
            raise TlsConfigError([f"TLS mode {self.mode!r} is not one of auto, on, off"])
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise TlsConfigError(
                ["a client certificate and its private key go together: give both or neither"]
            )

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, prefix: str = TLS_ENV) -> ClientTls:
        """`<prefix>` (auto|true|false), `<prefix>_CA_FILE`, `<prefix>_CLIENT_CERT_FILE` and
        `<prefix>_CLIENT_KEY_FILE`; the files must be readable PEM. Raises TlsConfigError
        listing every problem."""
        env = os.environ if env is None else env
        problems: list[str] = []
        raw = env.get(prefix, "").strip().lower() or "auto"
        mode = _MODES.get(raw)
        if mode is None:
            problems.append(f"{prefix}={raw!r} is not one of auto, true, false")
        files: dict[str, Path | None] = {}
        for suffix, kind in (
            ("_CA_FILE", _CERTIFICATE),
            ("_CLIENT_CERT_FILE", _CERTIFICATE),
            ("_CLIENT_KEY_FILE", _PRIVATE_KEY),
        ):
            variable = prefix + suffix
            value = env.get(variable, "").strip()
            path = files[suffix] = Path(value).expanduser() if value else None
            if path is not None:
                try:
                    _read_pem(path, kind)
                except TlsConfigError as exc:
                    problems += [f"{variable}: {problem}" for problem in exc.problems]
        cert, key = files["_CLIENT_CERT_FILE"], files["_CLIENT_KEY_FILE"]
        if (cert is None) != (key is None):
            problems.append(f"{prefix}_CLIENT_CERT_FILE and {prefix}_CLIENT_KEY_FILE go together: set both")
        if problems:
            raise TlsConfigError(problems)
        return cls(mode or "auto", files["_CA_FILE"], cert, key)

    def enabled_for(self, address: str) -> bool:
        """Whether a channel to `address` uses TLS."""
        return self.mode == "on" or (self.mode == "auto" and not is_loopback(address))


def channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    """TLS credentials trusting `tls.ca_file` (else the system's roots), with the client
    certificate when there is one. The files are read now; TlsConfigError if one cannot be."""
    certificate = key = None
    if tls.client_cert_file is not None and tls.client_key_file is not None:
        certificate = _read_pem(tls.client_cert_file, _CERTIFICATE)
        key = _read_pem(tls.client_key_file, _PRIVATE_KEY)
    return grpc.ssl_channel_credentials(
        root_certificates=_read_pem(tls.ca_file, _CERTIFICATE) if tls.ca_file is not None else None,
        private_key=key,
        certificate_chain=certificate,
    )


# Calls spread over every address the target resolves to (several IPs in a list, or a headless
# Service's DNS name), one subchannel each; the default (pick_first) would send all to one.
BALANCING = ("grpc.lb_policy_name", "round_robin")

# Interceptors a process adds to every channel it opens from then on (a service's client-call
# metrics: modelreg_common.observability.client_metrics), after the tracing one.
_process_interceptors: list[grpc.aio.ClientInterceptor] = []


def intercept_channels(interceptors: Sequence[grpc.aio.ClientInterceptor]) -> None:
    """Give every channel `open_channel` opens from now on these interceptors too (call before
    the first client is made; a process calls it once)."""
    _process_interceptors[:] = interceptors


def open_channel(address: str, tls: ClientTls, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """An asyncio channel to `address` (one address, a comma-separated list of replicas' IP
    addresses, or a gRPC target: `addresses.grpc_target`), balancing calls round robin over the
    replicas; secure when `tls` says so for this address. Calls carry the W3C trace context
    when the process has an OpenTelemetry tracer provider (`tracing`)."""
    target = grpc_target(address)
    options = [BALANCING, *options]
    interceptors = [*client_interceptors(), *_process_interceptors]
    if not tls.enabled_for(address):
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    credentials = channel_credentials(tls)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
