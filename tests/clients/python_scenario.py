"""The Python SDK's leg of the conformance scenario (docs/clients.md, "Conformance").

    python -m tests.clients.python_scenario run MODEL SOURCE_DIR DEST_DIR
    python -m tests.clients.python_scenario pull VERSION_REF DEST_DIR

Prints one JSON line and exits 0, or prints the error on stderr and exits 1. The Go
(clients/go/cmd/conformance) and TypeScript (clients/ts/conformance/scenario.ts) programs
follow the same contract.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from modelreg import AsyncClient
from modelreg.errors import ModelregError, RegistryError
from modelregistry.v1 import model_pb2

# The scenario's fixed inputs: the same in every language.
PARAMS: dict[str, Any] = {"learning_rate": 0.001, "layers": [64, 32], "optimizer": {"name": "adam"}}
METRICS = {"accuracy": 0.93, "loss": 0.12}
MOVED_ALIAS = "staging"
PROTECTED_ALIAS = "production"


def _digests(root: Path, version: model_pb2.ModelVersion) -> dict[str, str]:
    """The pulled files hashed again on disk: the contract reports what is there."""
    found = {}
    for file in version.files:
        with (root / file.path).open("rb") as stream:
            found[file.path] = hashlib.file_digest(stream, "sha256").hexdigest()
    return found


async def scenario(model: str, source: Path, dest: Path) -> dict[str, Any]:
    async with AsyncClient() as registry:
        pushed = await registry.push(
            model, source, description="conformance python", params=PARAMS, metrics=METRICS, alias=MOVED_ALIAS
        )
        version = pushed.version
        pulled = await registry.pull(f"{model}@{MOVED_ALIAS}", dest)
        await registry.protect_alias(model, PROTECTED_ALIAS)
        try:
            await registry.set_alias(model, PROTECTED_ALIAS, version.number)
        except RegistryError as refused:
            code, reason = refused.code.name, refused.reason
        else:
            raise SystemExit("moving the protected alias was not refused")
        return {
            "language": "python",
            "model_version": version.name,
            "alias": MOVED_ALIAS,
            "params": MessageToDict(version.params),
            "metrics": dict(version.metrics),
            "files": {f.path: {"sha256": f.sha256, "size_bytes": f.size_bytes} for f in pushed.files},
            "resumed_streams": sum(f.resumed_streams for f in pushed.files),
            "pulled_model_version": pulled.version.name,
            "pulled": await asyncio.to_thread(_digests, dest, pulled.version),
            "protected_alias_code": code,
            "protected_alias_reason": reason,
        }


async def pull(ref: str, dest: Path) -> dict[str, Any]:
    async with AsyncClient() as registry:
        pulled = await registry.pull(ref, dest)
        return {
            "language": "python",
            "model_version": pulled.version.name,
            "pulled": await asyncio.to_thread(_digests, dest, pulled.version),
        }


def main(args: list[str]) -> int:
    try:
        if len(args) == 4 and args[0] == "run":
            result = asyncio.run(scenario(args[1], Path(args[2]), Path(args[3])))
        elif len(args) == 3 and args[0] == "pull":
            result = asyncio.run(pull(args[1], Path(args[2])))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ModelregError as exc:
        print(f"python_scenario: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
