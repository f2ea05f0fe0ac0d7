"""The web service's rules that need no registry: sanitising, sessions, CSRF, refusal wording,
filter positions, roles, settings; and the SDK's verified relay of a download."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import modelreg_web
import pytest
from modelreg.downloads import stream_file
from modelreg.errors import FailedPrecondition, IntegrityError, InvalidArgument, PermissionDenied
from modelreg.settings import ClientSettings
from modelreg_api import wire
from modelreg_api.names import ModelVersionName
from modelreg_web import present
from modelreg_web.config import WebConfigError, WebSettings
from modelreg_web.markdown import render_markdown
from modelreg_web.pages.auth import local_path
from modelreg_web.roles import abilities
from modelreg_web.sessions import SessionCodec
from modelregistry.v1 import access_service_pb2 as acc
from modelregistry.v1 import model_pb2

KEY = hashlib.sha256(b"test").digest()


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<img src=x onerror=alert(1)>",
        "[x](JaVaScRiPt:alert(1))",
        "![i](javascript:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<iframe src=https://evil.example></iframe>",
        "[x](vbscript:msgbox(1))",
    ],
)
def test_markdown_keeps_no_script_no_handler_and_no_foreign_scheme(text: str) -> None:
    html = str(render_markdown(text))
    for tag in re.finditer(r"<[a-zA-Z][^>]*>", html):  # real tags; escaped text is &lt;...
        element = tag.group(0).lower()
        assert not element.startswith(("<script", "<iframe", "<img")) or 'src="https' in element, element
        assert not re.search(r"\son\w+=", element), element
        assert not re.search(r"(href|src)=\"(javascript|data|vbscript):", element), element


def test_markdown_keeps_ordinary_formatting_and_safe_links() -> None:
    html = str(
        render_markdown("# T\n\n**b** [d](https://e.example/x) [m](mailto:a@b.c)\n\n| a |\n|---|\n| 1 |")
    )
    assert "<h1>T</h1>" in html
    assert "<strong>b</strong>" in html
    assert '<a href="https://e.example/x" rel="noopener noreferrer nofollow">d</a>' in html
    assert 'href="mailto:a@b.c"' in html
    assert "<table>" in html


def test_sessions_are_sealed_and_reject_tampering_other_keys_and_expiry() -> None:
    codec = SessionCodec(KEY, lifetime=60)
    cookie = codec.seal("mrt_secret", "user:a@example.com")
    assert "mrt_secret" not in cookie
    session = codec.open(cookie)
    assert session is not None
    assert (session.token, session.principal) == ("mrt_secret", "user:a@example.com")
    flipped = cookie[:20] + ("A" if cookie[20] != "A" else "B") + cookie[21:]
    assert codec.open(flipped) is None
    assert SessionCodec(hashlib.sha256(b"other").digest(), 60).open(cookie) is None
    assert codec.open("") is None
    assert codec.open("not base64 !!") is None
    assert SessionCodec(KEY, lifetime=-1).open(SessionCodec(KEY, lifetime=-1).seal("t", "p")) is None


def test_csrf_tokens_are_bound_to_the_cookie_and_the_key() -> None:
    codec = SessionCodec(KEY, lifetime=60)
    field = codec.csrf_field("cookie-value-1234567890")
    assert codec.csrf_valid("cookie-value-1234567890", field)
    assert not codec.csrf_valid("cookie-value-0000000000", field)
    assert not codec.csrf_valid(None, field)
    assert not codec.csrf_valid("cookie-value-1234567890", None)
    assert not SessionCodec(hashlib.sha256(b"x").digest(), 60).csrf_valid("cookie-value-1234567890", field)


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/n/a", "/n/a"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("javascript:x", "/"),
        ("", "/"),
    ],
)
def test_sign_in_returns_only_to_this_site(target: str, kept: str) -> None:
    assert local_path(target) == kept


def test_a_gate_refusal_reads_in_plain_words_with_the_values() -> None:
    error = FailedPrecondition(
        "alias production is protected: ...",
        reason="METRIC_GATE_FAILED",
        metadata={
            "alias": "namespaces/t/models/m/aliases/production",
            "model_version": "namespaces/t/models/m/versions/3",
            "gate": "metrics.auc >= 0.9",
            "condition": "metrics.auc >= 0.9",
            "metric": "auc",
            "candidate_value": "0.85",
        },
    )
    refusal = present.explain(error, "move @production")
    assert refusal.title == "The registry refused to move @production"
    assert refusal.explanation == (
        "production is protected by the gate metrics.auc >= 0.9. "
        "t/m/3 has auc = 0.85, which fails metrics.auc >= 0.9."
    )
    assert ("candidate's value", "0.85") in refusal.values
    regression = present.explain(
        FailedPrecondition(
            "...",
            reason="METRIC_REGRESSION",
            metadata={
                "alias": "namespaces/t/models/m/aliases/prod",
                "model_version": "namespaces/t/models/m/versions/4",
                "metric": "latency",
                "direction": "METRIC_DIRECTION_MINIMIZE",
                "candidate_value": "30",
                "current_value": "20",
                "current_model_version": "namespaces/t/models/m/versions/2",
            },
        ),
        "move @prod",
    )
    assert regression.explanation == (
        "prod must not get worse on latency (lower is better). t/m/4 has 30, "
        "the version it points at now (t/m/2) has 20."
    )
    four_eyes = present.explain(PermissionDenied("...", reason="SELF_APPROVAL_NOT_ALLOWED"), "approve")
    assert four_eyes.explanation.startswith("Four eyes")


def test_a_filter_error_keeps_its_position() -> None:
    error = InvalidArgument(
        "filter", "expected a value (...), found end of filter at position 19", reason="INVALID_FILTER"
    )
    found = present.filter_error("metrics.accuracy >", error)
    assert found.position == 19
    assert found.caret == " " * 18 + "^"


def test_buttons_follow_bindings_and_token_restrictions() -> None:
    def identity(*bindings: tuple[str, int], **restriction: Any) -> acc.CallerIdentity:
        return acc.CallerIdentity(
            principal="user:a",
            bindings=[acc.RoleBinding(parent=p, role=r) for p, r in bindings],  # type: ignore[arg-type]
            restriction=acc.TokenRestriction(**restriction),
        )

    assert abilities(identity(("namespaces/-", acc.ROLE_ADMIN)), "t").administer
    only_other = abilities(identity(("namespaces/other", acc.ROLE_ADMIN)), "t")
    assert not only_other.edit
    editor = abilities(identity(("namespaces/t", acc.ROLE_EDITOR)), "t")
    assert editor.edit
    assert not editor.approve
    capped = abilities(identity(("namespaces/-", acc.ROLE_ADMIN), max_role=acc.ROLE_VIEWER), "t")
    assert not capped.edit
    elsewhere = abilities(identity(("namespaces/-", acc.ROLE_ADMIN), namespaces=["other"]), "t")
    assert not elsewhere.edit


def test_the_session_key_must_be_given_long_enough_and_private(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="MODELREG_WEB_SESSION_KEY"):
        WebSettings.from_environment({})
    with pytest.raises(WebConfigError, match="shorter than 32"):
        WebSettings.from_environment({"MODELREG_WEB_SESSION_KEY": "short"})
    key_file = tmp_path / "key"
    key_file.write_text("k" * 40)
    key_file.chmod(0o644)
    with pytest.raises(WebConfigError, match="readable by others"):
        WebSettings.from_environment({"MODELREG_WEB_SESSION_KEY_FILE": str(key_file)})
    key_file.chmod(0o600)
    settings = WebSettings.from_environment(
        {"MODELREG_WEB_SESSION_KEY_FILE": str(key_file), "MODELREG_WEB_ADDR": "0.0.0.0:9000"}
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.client.token == ""  # the service acts only as signed-in users
    assert (
        settings.session_key
        == WebSettings.from_environment({"MODELREG_WEB_SESSION_KEY": "k" * 40}).session_key
    )
    with pytest.raises(WebConfigError, match="host:port"):
        WebSettings.from_environment({"MODELREG_WEB_SESSION_KEY": "k" * 40, "MODELREG_WEB_ADDR": "8080"})


def test_the_metrics_address_defaults_to_loopback_and_can_be_off() -> None:
    key = {"MODELREG_WEB_SESSION_KEY": "k" * 40}
    assert WebSettings.from_environment(key).metrics_addr == "127.0.0.1:9466"
    pod = WebSettings.from_environment({**key, "MODELREG_METRICS_ADDR": "0.0.0.0:9466"})
    assert pod.metrics_addr == "0.0.0.0:9466"
    assert WebSettings.from_environment({**key, "MODELREG_METRICS_ADDR": "off"}).metrics_addr is None
    with pytest.raises(WebConfigError, match="MODELREG_METRICS_ADDR='9466' is not host:port"):
        WebSettings.from_environment({**key, "MODELREG_METRICS_ADDR": "9466"})


class _Stream:
    """What DownloadFile would send: `chunks` as data messages from offset 0."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __call__(self, request: Any, **_: Any) -> AsyncIterator[bytes]:
        async def messages() -> AsyncIterator[bytes]:
            offset = 0
            for chunk in self.chunks:
                yield wire.encode_data(offset, chunk)
                offset += len(chunk)

        return messages()


def _connection(chunks: list[bytes]) -> Any:
    return SimpleNamespace(
        settings=ClientSettings(),
        call_metadata=lambda: (),
        data=SimpleNamespace(download_file=_Stream(chunks)),
    )


async def _relay(chunks: list[bytes], manifest: bytes) -> tuple[list[bytes], Exception | None]:
    file = model_pb2.ModelFile(
        path="f.bin", size_bytes=len(manifest), sha256=hashlib.sha256(manifest).hexdigest()
    )
    received: list[bytes] = []
    try:
        async for chunk in stream_file(_connection(chunks), ModelVersionName("t", "m", 1), file):
            received.append(chunk)
    except IntegrityError as exc:
        return received, exc
    return received, None


async def test_a_relayed_download_withholds_its_last_chunk_until_the_digest_matches() -> None:
    good = [b"a" * 10, b"b" * 10, b"c" * 5]
    received, error = await _relay(good, b"".join(good))
    assert error is None
    assert b"".join(received) == b"".join(good)

    bad = [b"a" * 10, b"X" * 10, b"c" * 5]
    received, error = await _relay(bad, b"".join(good))
    assert isinstance(error, IntegrityError)
    assert error.reason == "DIGEST_MISMATCH"
    assert len(b"".join(received)) < 25  # the reader never got a complete file

    received, error = await _relay(good[:2], b"".join(good))
    assert isinstance(error, IntegrityError)
    assert error.reason == "SIZE_MISMATCH"


STATIC = Path(modelreg_web.__file__).parent / "static"
TEMPLATES = Path(modelreg_web.__file__).parent / "templates"


def test_every_asset_ships_with_the_project_within_the_script_budget() -> None:
    scripts = sorted(STATIC.glob("*.js"))
    assert scripts
    bundle = b"".join(path.read_bytes() for path in scripts)
    assert len(gzip.compress(bundle, 9)) < 300 * 1024
    for path in [*scripts, *STATIC.glob("*.css"), *TEMPLATES.glob("*.html")]:
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)  # the SVG namespace, not a fetch
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'src="/static/' in tag or 'type="application/json"' in tag, (path.name, tag)
        assert "import(" not in text or path.suffix != ".js"
