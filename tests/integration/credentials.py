"""Credentials for test principals that both services already honour.

`tests.support.credential_for` grants the role through the metadata service, which applies it at
once; the artifact service reloads role bindings every `MODELREG_AUTH_CACHE_SECONDS` (2 s), so
for up to that long it still answers NOT_FOUND for the new principal's namespaces. A test that
pushes right after getting a new principal's credential would fail now and then; this waits
until the artifact service sees the grant.
"""

from __future__ import annotations

import time

import grpc
from modelregistry.v1 import artifact_service_pb2 as art
from modelregistry.v1 import artifact_service_pb2_grpc

from tests.support import credential_for

_SEEN: set[tuple[str, str]] = set()
_PATIENCE_SECONDS = 15.0


def ready_credential_for(artifacts: str, principal: str, role: str = "admin", namespace: str = "-") -> str:
    """`credential_for(principal, role, namespace)` once the artifact service at `artifacts`
    authorizes it (role "" grants nothing: nothing to wait for)."""
    token = credential_for(principal, role, namespace)
    if not role or (artifacts, token) in _SEEN:
        return token
    # FindMissingBlobs names a version: NOT_FOUND while the caller has no role in its namespace,
    # anything else (an empty answer, PERMISSION_DENIED for a viewer) once it has one.
    probe = art.FindMissingBlobsRequest(
        model_version=f"namespaces/{'probe' if namespace == '-' else namespace}/models/probe/versions/1"
    )
    deadline = time.monotonic() + _PATIENCE_SECONDS
    with grpc.insecure_channel(artifacts) as channel:
        stub = artifact_service_pb2_grpc.ArtifactServiceStub(channel)
        while True:
            try:
                stub.FindMissingBlobs(probe, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
                break
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if code != grpc.StatusCode.NOT_FOUND:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"the artifact service never saw {principal}'s {role} role") from exc
            time.sleep(0.1)
    _SEEN.add((artifacts, token))
    return token
