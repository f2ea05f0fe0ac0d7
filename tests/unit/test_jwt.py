"""JWT verification: algorithms, key sets (file, URL, rotation), claims, principals, configuration."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm
from modelreg_common.identity.jwt import IssuerConfig, JwtRejected, JwtVerifier, VerifiedJwt, load_issuers
from modelreg_local.stores import free_port
from structlog.testing import capture_logs

from tests.identity_keys import JwksServer, SigningKey, claims, compact, sign, write_jwks

ISSUER = "https://issuer.test"
AUDIENCE = "modelreg"
NOW = 1_900_000_000.0
LEEWAY = 30.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.ec("ec-1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def token_for(key: SigningKey, subject: str = "alice", **overrides: Any) -> str:
    """A token of the test issuer for `subject`, issued at NOW for 600 s; None removes a claim."""
    body = claims(ISSUER, AUDIENCE, subject, now=NOW)
    body.update(overrides)
    return sign(key, {name: value for name, value in body.items() if value is not None})


def file_issuer(tmp_path: Path, keys: Sequence[SigningKey], **fields: Any) -> IssuerConfig:
    jwks = write_jwks(tmp_path / f"jwks-{len(list(tmp_path.iterdir()))}.json", keys)
    return IssuerConfig(**{"issuer": ISSUER, "audiences": (AUDIENCE,), "jwks_file": jwks, **fields})


@asynccontextmanager
async def running(
    issuers: Sequence[IssuerConfig], clock: Clock, **options: Any
) -> AsyncIterator[JwtVerifier]:
    verifier = JwtVerifier(issuers, leeway_seconds=LEEWAY, clock=clock, **options)
    await verifier.start()
    try:
        yield verifier
    finally:
        await verifier.close()


async def rejected(verifier: JwtVerifier, token: str) -> JwtRejected:
    """The rejection of `token`, whose message must not carry more than 32 chars of it."""
    with pytest.raises(JwtRejected) as caught:
        await verifier.verify(token)
    message = str(caught.value)
    assert "\n" not in message
    assert not any(token[start : start + 33] in message for start in range(len(token) - 32)), message
    return caught.value


# Algorithms and key sets


async def test_rs256_and_es256_tokens_are_accepted(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    async with running([file_issuer(tmp_path, [rsa_key, ec_key])], clock) as verifier:
        for key in (rsa_key, ec_key):
            verified = await verifier.verify(token_for(key))
            assert verified == VerifiedJwt(
                principal="user:alice", groups=(), issuer=ISSUER, subject="alice", expires_at=NOW + 600
            )


async def test_jwks_from_a_url(clock: Clock, ec_key: SigningKey) -> None:
    with JwksServer([ec_key]) as jwks:
        config = IssuerConfig(ISSUER, (AUDIENCE,), jwks_url=jwks.url)
        async with running([config], clock) as verifier:
            assert (await verifier.verify(token_for(ec_key))).principal == "user:alice"
        assert jwks.requests == 1


async def test_a_new_key_verifies_after_the_refresh_its_unknown_kid_triggers(
    clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    with JwksServer([rsa_key]) as jwks:
        config = IssuerConfig(ISSUER, (AUDIENCE,), jwks_url=jwks.url)
        async with running([config], clock, min_refresh_seconds=10) as verifier:
            jwks.set_keys([rsa_key, ec_key])
            clock.advance(11)
            assert (await verifier.verify(token_for(ec_key, exp=NOW + 600))).principal == "user:alice"
            assert jwks.requests == 2


async def test_refreshes_for_unknown_kids_are_rate_limited_and_shared(
    clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    with JwksServer([rsa_key]) as jwks:
        config = IssuerConfig(ISSUER, (AUDIENCE,), jwks_url=jwks.url)
        async with running([config], clock, min_refresh_seconds=10) as verifier:
            jwks.set_keys([rsa_key, ec_key])
            clock.advance(5)  # 5 s after the load at start: too soon to fetch again
            assert (await rejected(verifier, token_for(ec_key))).problem == "unknown_key"
            assert jwks.requests == 1
            clock.advance(6)
            # Tokens with unknown kids arriving together: one fetch, which they all wait for.
            rotated = [token_for(ec_key, subject) for subject in ("a", "b", "c")]
            invented = sign(ec_key, claims(ISSUER, AUDIENCE, "d", now=NOW), {"kid": "invented"})
            outcomes = await asyncio.gather(
                *(verifier.verify(token) for token in [*rotated, invented]), return_exceptions=True
            )
            assert [getattr(outcome, "principal", None) for outcome in outcomes[:3]] == [
                "user:a",
                "user:b",
                "user:c",
            ]
            assert isinstance(outcomes[3], JwtRejected)
            assert outcomes[3].problem == "unknown_key"
            assert jwks.requests == 2
            assert (await rejected(verifier, invented)).problem == "unknown_key"
            assert jwks.requests == 2


async def test_a_removed_key_stops_verifying_after_a_refresh_even_for_a_cached_token(
    clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    with JwksServer([rsa_key, ec_key]) as jwks:
        config = IssuerConfig(ISSUER, (AUDIENCE,), jwks_url=jwks.url)
        async with running([config], clock) as verifier:
            old, current = token_for(rsa_key), token_for(ec_key)
            first = await verifier.verify(old)
            assert await verifier.verify(old) is first  # served from the cache
            await verifier.verify(current)
            await verifier.refresh()  # the same keys: the cache stays valid
            assert await verifier.verify(old) is first
            assert jwks.requests == 2
            jwks.set_keys([ec_key])
            await verifier.refresh()
            assert (await rejected(verifier, old)).problem == "unknown_key"
            assert (await verifier.verify(current)).principal == "user:alice"


async def test_the_periodic_refresh_drops_a_removed_key(
    clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    with JwksServer([rsa_key, ec_key]) as jwks:
        config = IssuerConfig(ISSUER, (AUDIENCE,), jwks_url=jwks.url)
        async with running([config], clock, refresh_seconds=0.05) as verifier:
            token = token_for(rsa_key)
            await verifier.verify(token)
            jwks.set_keys([ec_key])
            deadline = time.monotonic() + 5
            problem = None
            while problem is None and time.monotonic() < deadline:
                try:
                    await verifier.verify(token)
                except JwtRejected as exc:
                    problem = exc.problem
                else:
                    await asyncio.sleep(0.02)
            assert problem == "unknown_key", "the removed key still verified 5 s after it left the JWKS"


async def test_a_failed_refresh_keeps_the_last_good_keys(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    on_file = file_issuer(tmp_path, [rsa_key])
    with JwksServer([ec_key]) as jwks:
        on_url = IssuerConfig("https://other.test", (AUDIENCE,), jwks_url=jwks.url)
        async with running([on_file, on_url], clock) as verifier:
            assert on_file.jwks_file is not None
            on_file.jwks_file.write_text("{not json", encoding="utf-8")
            jwks.failing = True
            with capture_logs() as logs:
                await verifier.refresh()
            assert {entry["issuer"] for entry in logs if entry["log_level"] == "warning"} == {
                "https://other.test",
                ISSUER,
            }
            assert (await verifier.verify(token_for(rsa_key, "bob"))).principal == "user:bob"
            other = sign(ec_key, claims("https://other.test", AUDIENCE, "carol", now=NOW))
            assert (await verifier.verify(other)).principal == "user:carol"


async def test_a_jwks_url_unavailable_at_start_is_logged_and_loaded_later(
    clock: Clock, ec_key: SigningKey
) -> None:
    unreachable = IssuerConfig(
        "https://gone.test", (AUDIENCE,), jwks_url=f"http://127.0.0.1:{free_port()}/jwks"
    )
    with JwksServer([ec_key]) as jwks:
        jwks.failing = True
        config = IssuerConfig(ISSUER, (AUDIENCE,), jwks_url=jwks.url)
        with capture_logs() as logs:
            verifier = JwtVerifier([unreachable, config], clock=clock, fetch_timeout_seconds=2)
            await verifier.start()
        try:
            assert {entry["issuer"] for entry in logs if entry["log_level"] == "warning"} == {
                "https://gone.test",
                ISSUER,
            }
            jwks.failing = False
            clock.advance(11)
            assert (await verifier.verify(token_for(ec_key))).principal == "user:alice"
        finally:
            await verifier.close()


@pytest.mark.parametrize(
    ("contents", "reason"),
    [
        (None, "cannot read it"),
        ("{not json", "not a JSON document"),
        ('{"keys": []}', "the key list is empty"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}', "'oct' is not an asymmetric"),
    ],
)
async def test_a_broken_jwks_file_at_start_is_an_error(
    tmp_path: Path, clock: Clock, contents: str | None, reason: str
) -> None:
    path = tmp_path / "jwks.json"
    if contents is not None:
        path.write_text(contents, encoding="utf-8")
    verifier = JwtVerifier([IssuerConfig(ISSUER, (AUDIENCE,), jwks_file=path)], clock=clock)
    with pytest.raises(ValueError, match=reason) as caught:
        await verifier.start()
    assert ISSUER in str(caught.value)
    assert str(path) in str(caught.value)
    await verifier.close()


def raw_rs256(private_key: rsa.RSAPrivateKey, kid: str, body: dict[str, Any]) -> str:
    """An RS256 token signed without PyJWT (which refuses to sign with a weak key)."""
    unsigned = compact({"alg": "RS256", "kid": kid}, body).rstrip(".")
    signature = private_key.sign(unsigned.encode(), padding.PKCS1v15(), hashes.SHA256())
    return compact({"alg": "RS256", "kid": kid}, body, signature)


async def test_only_public_signing_keys_of_adequate_size_are_loaded(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (to be refused)
    assert isinstance(rsa_key.private_key, rsa.RSAPrivateKey)
    skipped = [
        {**RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True), "kid": "weak"},
        {**RSAAlgorithm.to_jwk(rsa_key.private_key, as_dict=True), "kid": "private"},
        {**RSAAlgorithm.to_jwk(rsa_key.private_key.public_key(), as_dict=True), "kid": "enc", "use": "enc"},
    ]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [*skipped, ec_key.public_jwk()]}), encoding="utf-8")
    body = claims(ISSUER, AUDIENCE, "alice", now=NOW)
    async with running([IssuerConfig(ISSUER, (AUDIENCE,), jwks_file=path)], clock) as verifier:
        assert (await verifier.verify(token_for(ec_key))).principal == "user:alice"
        for token in (
            raw_rs256(weak, "weak", body),
            raw_rs256(rsa_key.private_key, "private", body),
            raw_rs256(rsa_key.private_key, "enc", body),
        ):
            assert (await rejected(verifier, token)).problem == "unknown_key"


# Forged and altered tokens


async def test_alg_none_and_hmac_with_the_public_key_are_refused(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey
) -> None:
    body = claims(ISSUER, AUDIENCE, "alice", now=NOW)
    unsigned = compact({"alg": "none", "kid": rsa_key.kid}, body)
    hmac_input = compact({"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"}, body).rstrip(".")
    confused = compact(
        {"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"},
        body,
        hmac.new(rsa_key.public_pem(), hmac_input.encode(), hashlib.sha256).digest(),
    )
    async with running([file_issuer(tmp_path, [rsa_key])], clock) as verifier:
        assert JwtVerifier.looks_like_jwt(unsigned)
        for token in (unsigned, confused):
            assert (await rejected(verifier, token)).problem == "unsupported_algorithm"


async def test_an_algorithm_outside_the_issuers_list_or_its_keys_is_refused(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    rsa_only = file_issuer(tmp_path, [rsa_key, ec_key], algorithms=("RS256",))
    async with running([rsa_only], clock) as verifier:
        refused = await rejected(verifier, token_for(ec_key))
        assert refused.problem == "unsupported_algorithm"
        assert str(refused) == f"JWT algorithm 'ES256' is not accepted for issuer {ISSUER} (accepted: RS256)"
    async with running([file_issuer(tmp_path, [rsa_key, ec_key])], clock) as verifier:
        # Signed by the EC key, but naming the RSA key: the key decides the algorithm, not the token.
        mislabelled = sign(ec_key, claims(ISSUER, AUDIENCE, "alice", now=NOW), {"kid": rsa_key.kid})
        assert (await rejected(verifier, mislabelled)).problem == "unsupported_algorithm"


async def test_a_tampered_payload_or_signature_or_an_impostor_key_is_refused(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    header, payload, signature = token_for(rsa_key).split(".")
    admin = compact({}, claims(ISSUER, AUDIENCE, "admin", now=NOW)).split(".")[1]
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    impostor = SigningKey.ec(ec_key.kid)  # same kid, another private key
    async with running([file_issuer(tmp_path, [rsa_key, ec_key])], clock) as verifier:
        assert (await verifier.verify(f"{header}.{payload}.{signature}")).principal == "user:alice"
        for token in (f"{header}.{admin}.{signature}", f"{header}.{payload}.{flipped}", token_for(impostor)):
            assert (await rejected(verifier, token)).problem == "invalid_signature"


async def test_tokens_without_a_kid_are_checked_against_the_keys_of_their_algorithm(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    body = claims(ISSUER, AUDIENCE, "alice", now=NOW)
    anonymous = [{k: v for k, v in key.public_jwk().items() if k != "kid"} for key in (rsa_key, ec_key)]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": anonymous}), encoding="utf-8")
    async with running([IssuerConfig(ISSUER, (AUDIENCE,), jwks_file=path)], clock) as verifier:
        for key in (rsa_key, ec_key):
            token = sign(key, body)  # carries kid, which these keys lack
            assert (await rejected(verifier, token)).problem == "unknown_key"
        for key in (rsa_key, ec_key):
            token = jwt.encode(body, key.private_key, algorithm=key.algorithm)
            assert (await verifier.verify(token)).principal == "user:alice"
        other = SigningKey.ec("x")
        assert (
            await rejected(verifier, jwt.encode(body, other.private_key, algorithm="ES256"))
        ).problem == "invalid_signature"


@pytest.mark.parametrize(
    "token",
    [
        "a.b.c",  # not base64url JSON
        "bm90IGpzb24.e30.c2ln",  # header: not json
        compact({"alg": "RS256"}, {}).split(".")[0] + ".WzFd.c2ln",  # payload: [1]
        compact(
            {"alg": "RS256", "crit": ["exp"], "exp": 1}, {"iss": ISSUER}, b"sig"
        ),  # unknown critical header
        "eyJ" + "a" * 9000 + ".e30.c2ln",
        "not a jwt",
    ],
)
async def test_malformed_tokens(tmp_path: Path, clock: Clock, rsa_key: SigningKey, token: str) -> None:
    async with running([file_issuer(tmp_path, [rsa_key])], clock) as verifier:
        assert (await rejected(verifier, token)).problem == "malformed"


async def test_an_oversized_token_is_refused_unread(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey
) -> None:
    async with running([file_issuer(tmp_path, [rsa_key])], clock) as verifier:
        assert await verifier.verify(token_for(rsa_key, padding="x" * 5000))
        assert (await rejected(verifier, token_for(rsa_key, padding="x" * 7000))).problem == "malformed"


def test_what_looks_like_a_jwt(rsa_key: SigningKey) -> None:
    assert JwtVerifier.looks_like_jwt(token_for(rsa_key))
    assert JwtVerifier.looks_like_jwt("eyJhbGciOiJub25lIn0.e30.")
    api_token = "mrt_0123456789abcdef_" + "A" * 43
    for credential in (api_token, "", "a.b", "a.b.c.d", "a b.c.d", ".b.c", "a.b.c\n", "é.b.c"):
        assert not JwtVerifier.looks_like_jwt(credential), credential


# Issuer, audience and time


async def test_issuers_are_matched_exactly_and_keys_do_not_cross_issuers(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    first = file_issuer(tmp_path, [rsa_key])
    second = file_issuer(tmp_path, [ec_key], issuer="https://second.test")
    async with running([first, second], clock) as verifier:
        long_issuer = "https://evil.test/" + "x" * 100
        unknown = await rejected(verifier, token_for(rsa_key, iss=long_issuer))
        assert unknown.problem == "unknown_issuer"
        assert long_issuer[:32] in str(unknown)
        assert (await rejected(verifier, token_for(rsa_key, iss=ISSUER + "/"))).problem == "unknown_issuer"
        assert (await rejected(verifier, token_for(rsa_key, iss=None))).problem == "missing_claim"
        # Signed by the first issuer's key but claiming the second issuer.
        assert (
            await rejected(verifier, token_for(rsa_key, iss="https://second.test"))
        ).problem == "unknown_key"
        assert (
            await verifier.verify(token_for(ec_key, iss="https://second.test"))
        ).issuer == "https://second.test"


async def test_audience(tmp_path: Path, clock: Clock, rsa_key: SigningKey) -> None:
    config = file_issuer(tmp_path, [rsa_key], audiences=(AUDIENCE, "modelreg-ci"))
    async with running([config], clock) as verifier:
        assert await verifier.verify(token_for(rsa_key, aud=["other", "modelreg-ci"]))
        wrong = await rejected(verifier, token_for(rsa_key, aud="kubernetes"))
        assert wrong.problem == "wrong_audience"
        assert "modelreg or modelreg-ci" in str(wrong)
        assert (await rejected(verifier, token_for(rsa_key, aud=["a", "b"]))).problem == "wrong_audience"
        assert (await rejected(verifier, token_for(rsa_key, aud=None))).problem == "missing_claim"
        assert (await rejected(verifier, token_for(rsa_key, aud=7))).problem == "malformed"


@pytest.mark.parametrize(
    ("claim_overrides", "clock_offset", "problem"),
    [
        ({}, 600 + LEEWAY - 1, None),  # expired 29 s ago: within the leeway
        ({}, 600 + LEEWAY, "expired"),
        ({}, 600 + 3600, "expired"),
        ({"nbf": NOW + LEEWAY - 1}, 0, None),  # the issuer's clock runs 29 s ahead of ours
        ({"nbf": NOW + LEEWAY + 1}, 0, "not_yet_valid"),
        ({"nbf": None, "iat": NOW + LEEWAY + 1}, 0, "not_yet_valid"),
        ({"nbf": None, "iat": None}, 0, None),  # only exp is required
        ({"exp": None}, 0, "missing_claim"),
        ({"exp": "soon"}, 0, "malformed"),
        ({"exp": 10**400}, 0, "malformed"),
    ],
)
async def test_time_claims_with_the_leeway(
    tmp_path: Path,
    clock: Clock,
    *,
    rsa_key: SigningKey,
    claim_overrides: dict[str, Any],
    clock_offset: float,
    problem: str | None,
) -> None:
    clock.advance(clock_offset)
    async with running([file_issuer(tmp_path, [rsa_key])], clock) as verifier:
        token = token_for(rsa_key, **claim_overrides)
        if problem is None:
            assert (await verifier.verify(token)).principal == "user:alice"
        else:
            assert (await rejected(verifier, token)).problem == problem


async def test_a_cached_token_still_expires_on_time(
    tmp_path: Path, clock: Clock, rsa_key: SigningKey
) -> None:
    async with running([file_issuer(tmp_path, [rsa_key])], clock) as verifier:
        token = token_for(rsa_key)
        first = await verifier.verify(token)
        clock.advance(600 + LEEWAY - 1)
        assert await verifier.verify(token) is first
        clock.advance(1)
        assert (await rejected(verifier, token)).problem == "expired"


async def test_the_token_cache_is_bounded(tmp_path: Path, clock: Clock, rsa_key: SigningKey) -> None:
    async with running([file_issuer(tmp_path, [rsa_key])], clock, max_cached_tokens=2) as verifier:
        tokens = [token_for(rsa_key, subject) for subject in ("a", "b", "c")]
        first = await verifier.verify(tokens[0])
        assert await verifier.verify(tokens[0]) is first
        for token in tokens[1:]:
            await verifier.verify(token)
        again = await verifier.verify(tokens[0])  # evicted: verified anew
        assert again == first
        assert again is not first


# Principals


async def test_groups_claim(tmp_path: Path, clock: Clock, rsa_key: SigningKey) -> None:
    async with running([file_issuer(tmp_path, [rsa_key])], clock) as verifier:
        verified = await verifier.verify(token_for(rsa_key, groups=["ml-team", "ops", "ml-team"]))
        assert verified.groups == ("group:ml-team", "group:ops")
        assert (await rejected(verifier, token_for(rsa_key, groups="ml-team"))).problem == "malformed"
        assert (await rejected(verifier, token_for(rsa_key, groups=["ok", ""]))).problem == "malformed"
    config = file_issuer(tmp_path, [rsa_key], groups_claim="roles")
    async with running([config], clock) as verifier:
        verified = await verifier.verify(token_for(rsa_key, roles=["approvers"], groups=["ignored"]))
        assert verified.groups == ("group:approvers",)


async def test_principal_claim_and_prefix(tmp_path: Path, clock: Clock, rsa_key: SigningKey) -> None:
    by_email = file_issuer(tmp_path, [rsa_key], principal_claim="email")
    async with running([by_email], clock) as verifier:
        verified = await verifier.verify(
            token_for(rsa_key, "0042", email="alice@example.com", email_verified=True)
        )
        assert (verified.principal, verified.subject) == ("user:alice@example.com", "0042")
        unverified = token_for(rsa_key, email="alice@example.com", email_verified=False)
        assert (await rejected(verifier, unverified)).problem == "missing_claim"
        assert (await rejected(verifier, token_for(rsa_key))).problem == "missing_claim"  # no email
    robots = file_issuer(tmp_path, [rsa_key], principal_prefix="serviceaccount:ci/")
    async with running([robots], clock) as verifier:
        assert (
            await verifier.verify(token_for(rsa_key, "deployer"))
        ).principal == "serviceaccount:ci/deployer"
        assert (await rejected(verifier, token_for(rsa_key, "line\nbreak"))).problem == "missing_claim"


async def test_kubernetes_service_account_tokens(tmp_path: Path, clock: Clock, rsa_key: SigningKey) -> None:
    cluster = "https://kubernetes.default.svc.cluster.local"
    config = file_issuer(tmp_path, [rsa_key], issuer=cluster, kubernetes=True)

    def projected(subject: str) -> str:
        body = claims(cluster, [AUDIENCE], subject, now=NOW)
        body["kubernetes.io"] = {"namespace": "ml", "serviceaccount": {"name": "trainer", "uid": "1f0c"}}
        return sign(rsa_key, body)

    async with running([config], clock) as verifier:
        verified = await verifier.verify(projected("system:serviceaccount:ml:trainer"))
        assert verified == VerifiedJwt(
            principal="serviceaccount:ml/trainer",
            groups=(),
            issuer=cluster,
            subject="system:serviceaccount:ml:trainer",
            expires_at=NOW + 600,
        )
        for subject in (
            "alice",
            "system:serviceaccount:ml",
            "system:serviceaccount:ML:trainer",
            "system:serviceaccount:ml:trainer:x",
            "system:node:n1",
        ):
            assert (await rejected(verifier, projected(subject))).problem == "missing_claim"


# Configuration


def test_load_issuers(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(
        json.dumps(
            [
                {
                    "issuer": "https://dex.example.com",
                    "audiences": ["modelreg"],
                    "jwks_url": "https://dex.example.com/keys",
                    "principal_claim": "email",
                    "groups_claim": "groups",
                    "algorithms": ["RS256"],
                },
                {
                    "issuer": "https://kubernetes.default.svc.cluster.local",
                    "audiences": ["modelreg"],
                    "jwks_file": "cluster-jwks.json",
                    "kubernetes": True,
                },
            ]
        ),
        encoding="utf-8",
    )
    dex, cluster = load_issuers(path)
    assert dex == IssuerConfig(
        "https://dex.example.com",
        ("modelreg",),
        jwks_url="https://dex.example.com/keys",
        principal_claim="email",
        algorithms=("RS256",),
    )
    assert cluster.jwks_file == tmp_path / "cluster-jwks.json"
    assert cluster.kubernetes
    assert cluster.algorithms == ("RS256", "ES256")
    path.write_text("[]", encoding="utf-8")
    assert load_issuers(path) == []


A = "entry 1 (issuer 'https://a.test'): "
GOOD = {"issuer": "https://a.test", "audiences": ["modelreg"], "jwks_file": "jwks.json"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[{", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 3"),
        ({"issuers": [GOOD]}, "must hold a JSON list of issuer objects, not an object"),
        ([GOOD, "https://b.test"], "entry 2: must be a JSON object, not a string"),
        (
            [{**GOOD, "audience": "x"}],
            "entry 1 (issuer 'https://a.test'): unknown field 'audience' (known fields: issuer,",
        ),
        ([{"audiences": ["m"], "jwks_file": "j"}], "entry 1: field 'issuer': missing"),
        ([{**GOOD, "issuer": ""}], "entry 1: field 'issuer': must be a non-empty string"),
        ([{**GOOD, "issuer": 7}], "entry 1: field 'issuer': must be a string, not a number"),
        (
            [{**GOOD, "audiences": "modelreg"}],
            A + "field 'audiences': must be a list of strings, not a string",
        ),
        ([{**GOOD, "audiences": []}], A + "field 'audiences': must list at least one audience"),
        ([{**GOOD, "audiences": ["", "x"]}], A + "field 'audiences': must list at least one audience"),
        (
            [{**GOOD, "jwks_url": "https://a.test/keys"}],
            A + "fields 'jwks_file' and 'jwks_url': set exactly one",
        ),
        (
            [{"issuer": "https://a.test", "audiences": ["m"]}],
            A + "fields 'jwks_file' and 'jwks_url': set exactly one",
        ),
        (
            [{"issuer": "https://a.test", "audiences": ["m"], "jwks_url": "http://a.test/keys"}],
            A + "field 'jwks_url': must be an https URL (http only for a loopback host",
        ),
        ([{**GOOD, "algorithms": ["RS256", "HS256"]}], A + "field 'algorithms': 'HS256' is not accepted"),
        ([{**GOOD, "algorithms": ["none"]}], A + "field 'algorithms': 'none' is not accepted"),
        ([{**GOOD, "algorithms": []}], A + "field 'algorithms': must list at least one"),
        ([{**GOOD, "kubernetes": "yes"}], A + "field 'kubernetes': must be true or false, not a string"),
        (
            [{**GOOD, "kubernetes": True, "principal_prefix": "user:k8s/"}],
            A + "field 'kubernetes': a Kubernetes issuer",
        ),
        ([{**GOOD, "principal_prefix": "service:"}], A + "field 'principal_prefix': must start with 'user:'"),
        ([{**GOOD, "principal_prefix": "group:"}], A + "field 'principal_prefix': must start with 'user:'"),
        ([{**GOOD, "groups_claim": ""}], A + "field 'groups_claim': must be a non-empty string"),
        (
            [GOOD, {**GOOD, "jwks_file": "b.json"}],
            "entry 2 (issuer 'https://a.test'): field 'issuer': already configured by entry 1",
        ),
    ],
)
def test_load_issuers_names_the_entry_and_the_field(tmp_path: Path, document: Any, message: str) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: {message}")):
        load_issuers(path)


def test_load_issuers_from_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"cannot read the JWT issuer configuration .*missing\.json: No such file"
    ):
        load_issuers(tmp_path / "missing.json")
