"""The two calls the rollout controller makes to the Kubernetes API: read a Deployment, patch it.

Plain HTTPS with the pod's service-account credentials, as every in-cluster client does: the API
server at `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the token and the cluster's
CA from `/var/run/secrets/kubernetes.io/serviceaccount`. Two requests do not justify the official
client's dependency tree. The token file is read for every request, because the kubelet rewrites
it before it expires (bound service-account tokens live an hour by default).

All three are settings, so a test can point the controller at a fake API server.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg.errors import ModelregError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"
# How much of an error body goes into a message.
_QUOTED = 200


class KubernetesError(ModelregError):
    """The API server answered with an error status (`status`: 403, 404, 409, ...)."""

    def __init__(self, message: str, *, status: int, reason: str = "") -> None:
        super().__init__(message, reason=reason or f"HTTP_{status}")
        self.status = status

    @property
    def conflict(self) -> bool:
        """Somebody changed the object since we read it (our resourceVersion is stale)."""
        return self.status == 409

    @property
    def transient(self) -> bool:
        """Worth retrying: the server is overloaded, restarting, or timed out."""
        return self.status == 429 or self.status >= 500


class KubernetesUnavailable(ModelregError):
    """The API server could not be reached (connection refused, TLS failure, timeout)."""


@dataclass(frozen=True, slots=True)
class KubernetesApi:
    base_url: str
    token_file: Path
    ca_file: Path | None
    timeout: float = 10.0

    @classmethod
    def in_cluster(
        cls,
        env: Mapping[str, str],
        *,
        base_url: str | None = None,
        token_file: Path | None = None,
        ca_file: Path | None = None,
    ) -> KubernetesApi:
        """The API server the pod's environment names, unless given."""
        if not base_url:
            host = env.get("KUBERNETES_SERVICE_HOST", "")
            if not host:
                raise KubernetesUnavailable(
                    "KUBERNETES_SERVICE_HOST is not set (not in a pod?): pass --kubernetes-api",
                    reason="NOT_IN_CLUSTER",
                )
            port = env.get("KUBERNETES_SERVICE_PORT", "443")
            base_url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        if ca_file is None and (SERVICE_ACCOUNT_DIR / "ca.crt").is_file():
            ca_file = SERVICE_ACCOUNT_DIR / "ca.crt"
        return cls(
            base_url=base_url.rstrip("/"),
            token_file=token_file or SERVICE_ACCOUNT_DIR / "token",
            ca_file=ca_file,
        )

    def get(self, path: str) -> dict[str, Any]:
        return self._request("GET", path, None, None)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386); a `metadata.resourceVersion` in it is a precondition."""
        return self._request("PATCH", path, json.dumps(patch).encode(), MERGE_PATCH)

    def _token(self) -> str:
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KubernetesUnavailable(
                f"cannot read the service-account token {self.token_file}: {exc.strerror}",
                reason="UNREADABLE_CREDENTIAL",
            ) from None

    def _context(self) -> ssl.SSLContext | None:
        if not self.base_url.startswith("https:"):
            return None
        # The cluster's CA when there is one; else the system's (an API server with a public
        # certificate, or a test's server with its own `ca_file`).
        return ssl.create_default_context(cafile=None if self.ca_file is None else str(self.ca_file))

    def _request(
        self, method: str, path: str, body: bytes | None, content_type: str | None
    ) -> dict[str, Any]:
        """One call; blocking (the controller runs it in a thread)."""
        headers = {"Accept": "application/json", "Authorization": f"Bearer {self._token()}"}
        if content_type:
            headers["Content-Type"] = content_type
        # The URL is the configured API server (https in a cluster), never user input (S310).
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context()) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise _error(method, path, exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KubernetesUnavailable(
                f"{method} {self.base_url}{path}: {str(reason)[:_QUOTED]}", reason="KUBERNETES_UNAVAILABLE"
            ) from None
        return answer if isinstance(answer, dict) else {}


def _error(method: str, path: str, error: urllib.error.HTTPError) -> KubernetesError:
    """The API server's `Status` object (message, reason) as an exception."""
    try:
        status = json.loads(error.read() or b"{}")
    except (OSError, ValueError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    message = str(status.get("message") or error.reason)[:_QUOTED]
    reason = str(status.get("reason") or "")
    return KubernetesError(
        f"{method} {path}: {error.code} {message}", status=error.code, reason=reason.upper() or ""
    )
