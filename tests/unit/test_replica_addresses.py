"""Several replicas behind one address setting: what gRPC target a list becomes, and TLS's view."""

from __future__ import annotations

import pytest
from modelreg_api.addresses import AddressError, grpc_target, is_loopback
from modelreg_api.channels import ClientTls


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051"),
        ("registry.example.com:443", "registry.example.com:443"),
        ("127.0.0.1:50051,127.0.0.1:50061", "ipv4:127.0.0.1:50051,127.0.0.1:50061"),
        (" 10.0.0.1:1 , 10.0.0.2:1 ", "ipv4:10.0.0.1:1,10.0.0.2:1"),
        ("[::1]:1,[::1]:2", "ipv6:[::1]:1,[::1]:2"),
        ("dns:///modelreg-metadata.registry.svc:50051", "dns:///modelreg-metadata.registry.svc:50051"),
    ],
)
def test_an_address_list_becomes_the_target_grpc_balances_over(address: str, target: str) -> None:
    assert grpc_target(address) == target


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("a.example.com:1,b.example.com:1", "dns:///"),
        ("127.0.0.1:1,[::1]:2", "mixes"),
        ("127.0.0.1:1,127.0.0.2", "not an IP address with a port"),
    ],
)
def test_a_list_grpc_cannot_balance_over_is_refused_with_what_to_do(address: str, problem: str) -> None:
    with pytest.raises(AddressError, match=problem):
        grpc_target(address)


def test_a_list_of_loopback_replicas_is_loopback_and_a_mixed_one_is_not() -> None:
    assert is_loopback("127.0.0.1:50051,127.0.0.1:50061")
    assert not is_loopback("127.0.0.1:50051,10.0.0.2:50061")
    assert not ClientTls().enabled_for("127.0.0.1:50051,127.0.0.1:50061")
    assert ClientTls().enabled_for("10.0.0.1:1,10.0.0.2:1")
