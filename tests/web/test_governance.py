"""Governance through the web UI: review, approve as a second user, move a protected alias, and
refusals explained with the values the registry compared."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from modelreg_local.stack import LocalStack

from tests.support import ALICE, unique
from tests.web.conftest import SignedIn
from tests.web.sample import client_for

pytestmark = pytest.mark.integration

BOB = "user:bob-web@example.com"
VIEWER = "user:viola-web@example.com"


@pytest.fixture
def model(stack: LocalStack, tmp_path: Path) -> str:
    """A model of alice's with v1 (accuracy 0.81) and v2 (0.93), sealed; `production` protected
    by a gate (accuracy >= 0.9) and not worse on accuracy."""
    name = f"web-gov/{unique('gov')}"
    with client_for(stack, tmp_path / "cache") as registry:
        registry.create_model(name)
        for accuracy in (0.81, 0.93):
            registry.seal_version(registry.create_version(name, metrics={"accuracy": accuracy}).name)
        registry.protect_alias(
            name, "production", metric_gate="metrics.accuracy >= 0.9", not_worse={"accuracy": "max"}
        )
    return name


def path_of(model: str) -> str:
    return "/n/" + model.replace("/", "/m/", 1)


def test_review_approve_as_second_user_and_promote(signed_in: SignedIn, model: str) -> None:
    alice, bob = signed_in(), signed_in(BOB, "approver", "web-gov")
    base = path_of(model)
    assert (
        alice.submit(f"{base}/v/2/submit", {"comment": "best so far"}, page=f"{base}/v/2").status_code == 303
    )

    own = alice.submit(f"{base}/v/2/approve", {"comment": "mine"}, page=f"{base}/v/2")
    assert own.status_code == 403
    assert 'data-reason="SELF_APPROVAL_NOT_ALLOWED"' in own.text
    assert "Four eyes" in own.text

    approved = bob.submit(f"{base}/v/2/approve", {"comment": "looks good"}, page=f"{base}/v/2")
    assert approved.status_code == 303
    page = bob.get(f"{base}/v/2")
    assert 'data-testid="review-state">APPROVED<' in page.text
    assert "looks good" in page.text

    moved = bob.submit(f"{base}/aliases/production", {"version": "2"}, page=base)
    assert moved.status_code == 303
    assert 'data-alias="production"' in bob.get(base).text
    assert f'href="{base}/v/2" data-testid="alias-version"' in bob.get(base).text


def test_a_refused_move_says_why_with_the_compared_values(
    signed_in: SignedIn, model: str, stack: LocalStack, tmp_path: Path
) -> None:
    base = path_of(model)
    alice = signed_in()
    not_approved = alice.submit(f"{base}/aliases/production", {"version": "1"}, page=base)
    assert not_approved.status_code == 409
    assert 'data-reason="PROTECTED_ALIAS_VERSION_NOT_APPROVED"' in not_approved.text
    assert "only at approved versions" in not_approved.text

    with client_for(stack, tmp_path / "bob", BOB, "approver") as bob:
        for number in (1, 2):
            with client_for(stack, tmp_path / "cache") as registry:
                registry.submit_for_review(f"{model}/{number}")
            bob.approve_version(f"{model}/{number}")
    gate = alice.submit(f"{base}/aliases/production", {"version": "1"}, page=base)
    assert gate.status_code == 409
    assert 'data-reason="METRIC_GATE_FAILED"' in gate.text
    explanation = gate.text.split('data-testid="refusal-explanation">')[1].split("</p>")[0]
    assert "metrics.accuracy &gt;= 0.9" in explanation
    assert "accuracy = 0.81" in explanation

    assert alice.submit(f"{base}/aliases/production", {"version": "2"}, page=base).status_code == 303
    with client_for(stack, tmp_path / "cache") as registry:
        registry.unprotect_alias(model, "production")
        registry.protect_alias(model, "production", not_worse={"accuracy": "max"})
    worse = alice.submit(f"{base}/aliases/production", {"version": "1"}, page=base)
    assert worse.status_code == 409
    assert 'data-reason="METRIC_REGRESSION"' in worse.text
    assert "higher is better" in worse.text
    assert "0.81" in worse.text
    assert "0.93" in worse.text


def test_buttons_follow_the_role(signed_in: SignedIn, model: str) -> None:
    base = path_of(model)
    viewer = signed_in(VIEWER, "viewer", "web-gov")
    page = viewer.get(f"{base}/v/1").text
    assert 'data-testid="approve-button"' not in page
    assert 'data-testid="submit-button"' not in page
    assert 'data-testid="alias-move-form"' not in viewer.get(base).text
    refused = viewer.submit(f"{base}/v/1/submit", {}, page=f"{base}/v/1")  # the service decides
    assert refused.status_code == 403
    assert 'data-reason="IAM_PERMISSION_DENIED"' in refused.text
    approver = signed_in(BOB, "approver", "web-gov")
    assert 'data-testid="approve-button"' in approver.get(f"{base}/v/1").text
    admin = signed_in()
    assert 'data-testid="alias-protect-form"' in admin.get(base).text


def test_alias_history_and_state_at_time(signed_in: SignedIn, stack: LocalStack, tmp_path: Path) -> None:
    name = f"web-gov/{unique('hist')}"
    with client_for(stack, tmp_path / "cache") as registry:
        registry.create_model(name)
        for _ in range(2):
            registry.seal_version(registry.create_version(name).name)
        registry.set_alias(name, "staging", 1)
        time.sleep(0.05)
        middle = datetime.now(UTC)
        time.sleep(0.05)
        registry.set_alias(name, "staging", 2)
    browser = signed_in()
    deadline = time.monotonic() + 10
    history = f"{path_of(name)}/aliases/staging/history"
    assert f'data-history="{history}"' in browser.get(path_of(name)).text
    while (page := browser.get(history).text).count('data-testid="alias-change"') < 2:
        assert time.monotonic() < deadline, page[:3000]  # the trail is written a moment later
        time.sleep(0.2)
    assert f'ALIAS_MOVED by {ALICE} → <a href="{path_of(name)}/v/2">v2</a>' in page
    at = middle.isoformat().replace("+00:00", "Z")
    answer = browser.get("/audit", params={"alias": f"{name}@staging", "at": at})
    assert answer.status_code == 200, answer.text[:2000]
    assert 'data-testid="state-at-version">v1<' in answer.text
    later = (middle + timedelta(hours=1)).isoformat()
    assert (
        'data-testid="state-at-version">v2<'
        in browser.get("/audit", params={"alias": f"{name}@staging", "at": later}).text
    )
    bad = browser.get("/audit", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert 'data-testid="audit-problem"' in bad.text
