"""The artifact service's view of the metadata service, through its generated gRPC clients.

The artifact service calls with its own internal credential (never the user's): reads through
the public MetadataService (it has already authorized the user itself), manifest writes and
blob-reference checks through the internal ManifestService. A manifest write names the user the
upload was for (`x-modelreg-on-behalf-of`), which the metadata service accepts only from an
internal caller, so the trail records who added the file and that the artifact service verified
it. The request id travels along, so one id follows the call through both services' logs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator

import grpc
from modelreg_api import headers, manifests
from modelreg_api.channels import ClientTls, open_channel
from modelreg_api.errors import RegistryError
from modelreg_api.names import AliasName, ModelVersionName
from modelreg_common.context import current_caller, current_request_id
from modelreg_common.relay import relayed_error
from modelregistry.v1 import manifest_service_pb2 as manifest_pb
from modelregistry.v1 import manifest_service_pb2_grpc as manifest_grpc
from modelregistry.v1 import metadata_service_pb2 as pb
from modelregistry.v1 import metadata_service_pb2_grpc as pb_grpc
from modelregistry.v1 import model_pb2

from modelreg_artifacts.domain import StoredFile

CALL_TIMEOUT_SECONDS = 30.0
MAX_FILES_PER_BATCH = 500
# The longest a manifest change waits for files that uploads of the same version are finishing.
MAX_BATCH_WAIT_SECONDS = 0.1

# A batch is one change by one actor: the version, the actor, how it authenticated, and whether
# it replaces files (`replace_existing` applies to a whole batch).
_BatchKey = tuple[ModelVersionName, str, str, bool]
Metadata = tuple[tuple[str, str], ...]


def _batch_key(version: ModelVersionName, replace_existing: bool = False) -> _BatchKey:
    caller = current_caller()
    return (version, caller.principal, caller.authentication, replace_existing)


# Manifest refusals that are about one file of a batch, not the batch (modelreg_api.manifests).
_ONE_FILE_REFUSALS = frozenset({manifests.PATH_CONFLICT, manifests.FILE_EXISTS})


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


class MetadataClient:
    def __init__(self, address: str, tls: ClientTls, credential: str):
        self._channel = open_channel(address, tls)
        self._stub = pb_grpc.MetadataServiceStub(self._channel)
        self._manifests = manifest_grpc.ManifestServiceStub(self._channel)
        self._authorization = f"Bearer {credential}"
        # Files of one version that finish while a manifest change is in flight wait and go
        # together in the next BatchAddModelVersionFiles: the metadata service rewrites the
        # version per change, so one change per file made versions of thousands of files slow,
        # and parallel single adds collided (measured: 16 at once were ABORTED).
        self._queues: dict[_BatchKey, list[tuple[StoredFile, asyncio.Future[None]]]] = {}
        self._flushers: set[asyncio.Task[None]] = set()
        # Uploads of each version that will call `add_file` soon (see `expecting`), and an event
        # a waiting batch wakes on when one of them arrives or gives up.
        self._expected: Counter[_BatchKey] = Counter()
        self._changed: dict[_BatchKey, asyncio.Event] = {}

    def _metadata(self) -> Metadata:
        return ((headers.AUTHORIZATION, self._authorization), (headers.REQUEST_ID, current_request_id()))

    def _on_behalf_of(self, key: _BatchKey) -> Metadata:
        _, principal, authentication, _ = key
        return (
            *self._metadata(),
            (headers.ON_BEHALF_OF, principal),
            (headers.ON_BEHALF_OF_AUTHENTICATION, authentication),
        )

    async def get_version(self, ref: ModelVersionName | AliasName) -> model_pb2.ModelVersion:
        try:
            if isinstance(ref, AliasName):
                return await self._stub.GetModelVersionByAlias(
                    pb.GetModelVersionByAliasRequest(name=str(ref)),
                    metadata=self._metadata(),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
            return await self._stub.GetModelVersion(
                pb.GetModelVersionRequest(name=str(ref)),
                metadata=self._metadata(),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            raise relayed_error(exc) from None

    @contextlib.contextmanager
    def expecting(self, version: ModelVersionName, replace_existing: bool = False) -> Iterator[None]:
        """Announce an upload that is about to add a file to `version` (within milliseconds).

        Each manifest change rewrites the version's document (on FerretDB twice, with its outbox
        entry), so the fewer changes the better: a batch waits, at most MAX_BATCH_WAIT_SECONDS,
        for the files of every announced upload before it is sent. Without this, concurrent
        uploads alternate between two half-full batches (those that arrive while one is in
        flight, then the rest). A lone upload never waits.
        """
        key = _batch_key(version, replace_existing)
        self._expected[key] += 1
        try:
            yield
        finally:
            self._expected[key] -= 1
            if not self._expected[key]:
                del self._expected[key]
            self._wake(key)

    def _wake(self, key: _BatchKey) -> None:
        event = self._changed.get(key)
        if event is not None:
            event.set()

    async def add_file(
        self, version: ModelVersionName, file: StoredFile, replace_existing: bool = False
    ) -> None:
        """Record a verified file in the version's manifest (batched with concurrent ones)."""
        key = _batch_key(version, replace_existing)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append((file, done))
            self._wake(key)
        else:
            self._queues[key] = [(file, done)]
            flusher = asyncio.create_task(self._flush(key))
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        await done

    async def _gather(self, key: _BatchKey) -> None:
        """Wait until every announced upload of the batch's version has queued its file."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_BATCH_WAIT_SECONDS
        event = self._changed.setdefault(key, asyncio.Event())
        # Files in the queue were announced too (their uploads wait for this batch).
        while len(self._queues[key]) < self._expected[key] and (left := deadline - loop.time()) > 0:
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)

    async def _flush(self, key: _BatchKey) -> None:
        while self._queues.get(key):
            await self._gather(key)
            queue = self._queues[key]
            batch, rest = queue[:MAX_FILES_PER_BATCH], queue[MAX_FILES_PER_BATCH:]
            self._queues[key] = rest
            error = await self._send(key, [f for f, _ in batch])
            if isinstance(error, RegistryError) and error.reason in _ONE_FILE_REFUSALS and len(batch) > 1:
                # The manifest refused one file (a path conflict, other content at a path), which
                # refuses the whole batch: the other uploads must not fail for it, so each file
                # goes alone and gets its own answer.
                for file, done in batch:
                    _settle(done, await self._send(key, [file]))
                continue
            for _, done in batch:
                _settle(done, error)
        self._queues.pop(key, None)
        self._changed.pop(key, None)

    async def _send(self, key: _BatchKey, files: list[StoredFile]) -> Exception | None:
        """One BatchAddModelVersionFiles call; the error it ended with, if any."""
        version, _, _, replace_existing = key
        request = manifest_pb.BatchAddModelVersionFilesRequest(
            model_version=str(version),
            files=[
                model_pb2.ModelFile(
                    path=f.path, size_bytes=f.size_bytes, sha256=f.sha256, content_type=f.content_type
                )
                for f in files
            ],
            replace_existing=replace_existing,
        )
        try:
            await self._manifests.BatchAddModelVersionFiles(
                request, metadata=self._on_behalf_of(key), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            return relayed_error(exc)
        except Exception as exc:
            return exc
        return None

    async def referenced(self, digests: list[str]) -> list[str]:
        """The digests that some version's manifest references (soft-deleted versions included)."""
        if not digests:
            return []
        try:
            reply = await self._manifests.CheckBlobReferences(
                manifest_pb.CheckBlobReferencesRequest(sha256s=digests),
                metadata=self._metadata(),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            raise relayed_error(exc) from None
        return list(reply.referenced_sha256s)

    async def close(self) -> None:
        await self._channel.close(grace=None)
