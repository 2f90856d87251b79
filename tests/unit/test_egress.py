"""The egress guard's address rules (pure)."""

from __future__ import annotations

import pytest

from webmeeting.adapters.egress import Policy, admitted, is_public
from webmeeting.domain.api import ActivateRequest


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "100.127.255.254",
        "0.0.0.0",
        "224.0.0.251",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.2.10",  # documentation
        "198.18.0.1",  # benchmarking
        "::1",
        "::",
        "fe80::1",
        "fc00::1",  # unique local
        "fd12:3456::1",
        "fec0::1",  # site-local
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "2001:db8::1",  # documentation
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(address)
    assert not admitted(address, 443, Policy())


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "35.190.0.1", "2a00:1450:4001:82b::200e", "2606:4700::1111"])
def test_public_addresses_are_admitted_in_production(address: str) -> None:
    assert is_public(address) and admitted(address, 443, Policy())


def test_locally_only_the_exact_allowed_host_and_port_pass() -> None:
    local = Policy(scheme="http", port=5000, allow=frozenset({"127.0.0.1:5000"}))
    assert admitted("127.0.0.1", 5000, local)
    assert not admitted("127.0.0.1", 5001, local)
    assert not admitted("127.0.0.2", 5000, local)
    assert not admitted("8.8.8.8", 5000, local)  # nothing public either: nothing leaves the machine


@pytest.mark.parametrize("fqdn", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "1.2.3.4", "[::1]", "::1", "0x7f.0.0.1"])
def test_ip_literals_are_not_pbx_fqdns(fqdn: str) -> None:
    body = {"license_key": "WM-DEV-LOCAL-0001", "pbx_fqdn": fqdn, "webmeeting_fqdn": "meet.example.com", "pbx_version": "20"}
    with pytest.raises(ValueError):
        ActivateRequest.model_validate(body)


def test_dns_names_with_digits_are_fqdns() -> None:
    body = {
        "license_key": "WM-DEV-LOCAL-0001",
        "pbx_fqdn": "1.pbx.example.com",
        "webmeeting_fqdn": "m.example.com",
        "pbx_version": "20",
    }
    assert ActivateRequest.model_validate(body).pbx_fqdn == "1.pbx.example.com"
