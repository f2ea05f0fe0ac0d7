"""What a push or a pull did: the version, every file and how it got there, bytes moved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from modelregistry.v1 import model_pb2

from modelreg.progress import Outcome

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    """One page of a listing: its items and the cursor of the next page ("" after the last).

    For callers that page on someone else's behalf (a web page with a "next" link): the cursor is
    the service's opaque keyset token, to be passed back unchanged with the same filter.
    """

    items: Sequence[Item]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class TransferredFile:
    path: str
    size_bytes: int
    sha256: str
    outcome: Outcome
    # Bytes of this file that crossed the network in this call.
    transferred_bytes: int = 0
    # The artifact service's upload session (`uploads/{id}`) that carried a pushed file, when
    # it went through one (large or deduplicated files).
    upload_session: str = ""
    # Pushed files: bytes the registry held before this call sent any (all of them when the
    # content was stored already, or what an interrupted earlier push had committed).
    skipped_bytes: int = 0
    # Pushed files: broken streams continued from the bytes the service had committed.
    resumed_streams: int = 0

    @property
    def resent_bytes(self) -> int:
        """Bytes sent more than once: after a broken stream, those the service had not committed."""
        return max(0, self.transferred_bytes - (self.size_bytes - self.skipped_bytes))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "outcome": str(self.outcome),
            "transferred_bytes": self.transferred_bytes,
        }
        if self.upload_session:
            data["upload_session"] = self.upload_session
        if self.skipped_bytes or self.resumed_streams:
            data["skipped_bytes"] = self.skipped_bytes
            data["resent_bytes"] = self.resent_bytes
            data["resumed_streams"] = self.resumed_streams
        return data


def _bytes_with(files: list[TransferredFile], *outcomes: Outcome) -> int:
    return sum(f.size_bytes for f in files if f.outcome in outcomes)


@dataclass(frozen=True, slots=True)
class PushResult:
    version: model_pb2.ModelVersion
    files: list[TransferredFile] = field(default_factory=list)
    # The alias set after sealing, if one was asked for.
    alias: str = ""
    # True when an earlier, interrupted push of the same content was continued.
    continued_earlier_push: bool = False

    @property
    def resumed(self) -> bool:
        """True when this push continued what an interruption left: the version of an earlier,
        interrupted push, an upload session it had committed bytes to, or a stream of this
        push that broke and went on from the bytes the service had committed."""
        return self.continued_earlier_push or any(
            f.outcome is Outcome.RESUMED or f.resumed_streams for f in self.files
        )

    @property
    def uploaded_bytes(self) -> int:
        """Bytes sent to the artifact service by this push (bytes sent again after a break included)."""
        return sum(f.transferred_bytes for f in self.files)

    @property
    def skipped_bytes(self) -> int:
        """Bytes not sent: already stored in the registry, already in the version, or committed
        by an interrupted earlier push. Never negative: re-sent bytes are `resent_bytes`."""
        return sum(f.skipped_bytes for f in self.files)

    @property
    def resent_bytes(self) -> int:
        """Bytes sent more than once, after broken streams."""
        return sum(f.resent_bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": json_format.MessageToDict(self.version, preserving_proto_field_name=True),
            "alias": self.alias,
            "resumed": self.resumed,
            "uploaded_bytes": self.uploaded_bytes,
            "skipped_bytes": self.skipped_bytes,
            "resent_bytes": self.resent_bytes,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True, slots=True)
class PullResult:
    version: model_pb2.ModelVersion
    destination: Path
    files: list[TransferredFile] = field(default_factory=list)

    @property
    def received_bytes(self) -> int:
        """Bytes that crossed the network; less than the downloaded files' sizes when a partial
        download left by an interrupted pull was continued."""
        return sum(f.transferred_bytes for f in self.files)

    @property
    def downloaded_bytes(self) -> int:
        return _bytes_with(self.files, Outcome.DOWNLOADED)

    @property
    def cached_bytes(self) -> int:
        return _bytes_with(self.files, Outcome.FROM_CACHE)

    @property
    def in_place_bytes(self) -> int:
        """Bytes of files the destination already held (a repeated pull)."""
        return _bytes_with(self.files, Outcome.IN_PLACE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": json_format.MessageToDict(self.version, preserving_proto_field_name=True),
            "destination": str(self.destination),
            "received_bytes": self.received_bytes,
            "downloaded_bytes": self.downloaded_bytes,
            "cached_bytes": self.cached_bytes,
            "in_place_bytes": self.in_place_bytes,
            "files": [f.to_dict() for f in self.files],
        }
