"""What a push reports about its bytes: never negative, and adding up to each file's size."""

from __future__ import annotations

from modelreg.progress import Outcome
from modelreg.results import PushResult, TransferredFile
from modelregistry.v1 import model_pb2

MIB = 1024 * 1024


def test_bytes_sent_again_after_broken_streams_are_resent_not_negative_skipped() -> None:
    # 300 MiB sent as 569 MiB across cuts within one push (the report).
    cut = TransferredFile("w.bin", 300 * MIB, "a" * 64, Outcome.UPLOADED, 569 * MIB, "uploads/x", 0, 4)
    result = PushResult(model_pb2.ModelVersion(name="v"), [cut])
    assert result.skipped_bytes == 0
    assert result.resent_bytes == 269 * MIB
    assert result.uploaded_bytes == 569 * MIB
    assert result.resumed  # its own broken streams went on from the committed bytes
    report = result.to_dict()
    assert (report["skipped_bytes"], report["resent_bytes"], report["resumed"]) == (0, 269 * MIB, True)
    assert report["files"][0]["resumed_streams"] == 4


def test_skipped_bytes_count_what_the_registry_held_before_the_push() -> None:
    files = [
        TransferredFile("a", 10 * MIB, "a" * 64, Outcome.DEDUPLICATED, 0, "uploads/a", 10 * MIB),
        TransferredFile("b", 10 * MIB, "b" * 64, Outcome.ALREADY_PRESENT, 0, "", 10 * MIB),
        # An earlier push committed 6 MiB; this one sent the other 4 and 1 more after a cut.
        TransferredFile("c", 10 * MIB, "c" * 64, Outcome.RESUMED, 5 * MIB, "uploads/c", 6 * MIB, 1),
        TransferredFile("d", 1 * MIB, "d" * 64, Outcome.UPLOADED, 1 * MIB),
    ]
    result = PushResult(model_pb2.ModelVersion(name="v"), files)
    assert result.skipped_bytes == 26 * MIB
    assert result.resent_bytes == 1 * MIB
    assert result.uploaded_bytes == 6 * MIB
    for f in files:
        assert f.transferred_bytes - f.resent_bytes + f.skipped_bytes == f.size_bytes
    plain = PushResult(model_pb2.ModelVersion(name="v"), [files[3]])
    assert not plain.resumed
    assert PushResult(model_pb2.ModelVersion(name="v"), [files[3]], "", True).resumed
