"""The outbound URL guard: strict parsing, the default deny of internal addresses, the lists on
names and resolved addresses, and the check of each connection (a DNS answer that changes).

Resolvers are fakes: no name is ever looked up for real, and the only sockets opened go to a
receiver on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore
import pytest
from hooktools import FakeResolver, Receiver

from wahttp.server.outbound import (
    AddressNotAllowed,
    GuardedBackend,
    InvalidOutboundUrl,
    OutboundGuard,
    OutboundPolicy,
    guarded_client,
    is_internal,
    normalise_host,
    parse_url,
)

PUBLIC = "93.184.215.14"  # a public address; never connected to (no test sends there)

# The bypass forms, as URLs set through the API (ports as written).
BYPASSES = [
    "http://2130706433:8080/hook",
    "http://0x7f000001:8080/hook",
    "http://127.1:8080/hook",
    "http://017700000001:8080/hook",
    "http://[::ffff:127.0.0.1]:8080/hook",
    "http://0:8080/hook",
    "http://localhost:8080/hook",
    "http://LOCALHOST./hook",
    "http://loopback.test:8080/hook",  # a name that resolves to loopback
    "http://127\u30020\u30020\u30021:8080/hook",  # ideographic full stops
    "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/hook",  # fullwidth digits, dots
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://[::1]:8080/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:a9fe:a9fe]/",  # mapped 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://100.64.0.1/",  # CGNAT
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://mixed.test/",  # one public and one loopback address: refused as a whole
]

ANSWERS: dict[str, list[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "loopback.test": ["127.0.0.1"],
    "mixed.test": [PUBLIC, "127.0.0.1"],
    "hooks.example.com": [PUBLIC],
    "lan.test": ["10.1.2.3"],
}


def fake_resolver(answers: dict[str, list[str]] | None = None) -> FakeResolver:
    return FakeResolver(ANSWERS if answers is None else answers)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x7f.1", "127.0.0.1"),
        ("127\u30020\u30020\u30021", "127.0.0.1"),
        ("127\uff0e0\uff0e0\uff0e1", "127.0.0.1"),
        ("127\uff610\uff610\uff611", "127.0.0.1"),
        ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhost"),
        ("Hooks.Example.COM.", "hooks.example.com"),
        ("b\u00fccher.example", "xn--bcher-kva.example"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::FFFF:7F00:1", "::ffff:7f00:1"),
    ],
)
def test_hosts_are_normalised_as_a_socket_sees_them(host: str, expected: str) -> None:
    assert normalise_host(host) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "http:///x",
        "http://exa mple.com/",
        "http://example.com\x00.evil/",
        "http://example.com/\x7f",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://1.2.3.4.5/",
        "http://999.1.1.1/",
        "http://[fe80::1%25eth0]/",
        "http://ex_am$ple.com/",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidOutboundUrl):
        parse_url(url)


def test_internal_addresses() -> None:
    internal = [
        "127.0.0.1",
        "127.255.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.251",
        "255.255.255.255",
        "198.18.0.1",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "64:ff9b::808:808",
        "2001:db8::1",
    ]
    for text in internal:
        assert is_internal(ipaddress.ip_address(text)), text
    for text in (PUBLIC, "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"):
        assert not is_internal(ipaddress.ip_address(text)), text


@pytest.mark.parametrize("url", BYPASSES)
async def test_the_default_refuses_every_internal_form(url: str) -> None:
    guard = OutboundGuard(OutboundPolicy(), resolver=fake_resolver())
    with pytest.raises(AddressNotAllowed, match="address not allowed"):
        await guard.check(url)
    # The operator's own URLs may (loopback receivers and the like).
    await OutboundGuard(OutboundPolicy().operator(), resolver=fake_resolver()).check(url)


async def test_public_names_pass_and_unknown_names_are_refused() -> None:
    resolver = fake_resolver()
    guard = OutboundGuard(OutboundPolicy(), resolver=resolver)
    checked = await guard.check("https://hooks.example.com/h?token=abc")
    assert [str(a) for a in checked.addresses] == [PUBLIC]
    assert "abc" not in repr(checked)
    await guard.check(f"http://{PUBLIC}:8080/")
    with pytest.raises(InvalidOutboundUrl, match="cannot resolve"):
        await guard.check("https://nowhere.test/")
    # With the opt-in and no lists nothing needs looking up.
    resolver.calls.clear()
    await OutboundGuard(OutboundPolicy(allow_internal=True), resolver=resolver).check(
        "https://nowhere.test/"
    )
    assert resolver.calls == []


async def test_the_lists_apply_to_names_and_resolved_addresses() -> None:
    resolver = fake_resolver()
    operator = OutboundPolicy.parse(None, "127.0.0.0/8, *.internal").operator()
    guard = OutboundGuard(operator, resolver=resolver)
    for url in (
        "http://loopback.test/",
        "http://2130706433/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://127\u30020\u30020\u30021/",
        "http://mixed.test/",
        "http://meta.internal/",
    ):
        with pytest.raises(AddressNotAllowed, match="WAHTTP_WEBHOOK_DENY"):
            await guard.check(url)
    await guard.check("http://lan.test/")  # the operator may reach 10/8; not denied
    # An allow-list network admits those addresses for API-set URLs; names still must match.
    api = OutboundGuard(OutboundPolicy.parse("lan.test, 10.1.0.0/16", None), resolver=resolver)
    await api.check("http://lan.test/")
    await api.check("http://10.1.9.9/")
    with pytest.raises(AddressNotAllowed, match="not in WAHTTP_WEBHOOK_ALLOW"):
        await api.check("http://hooks.example.com/")
    with pytest.raises(AddressNotAllowed, match="not in WAHTTP_WEBHOOK_ALLOW"):
        await api.check("http://10.2.0.1/")


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """An inner backend that records connection attempts and refuses them all."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        raise httpcore.ConnectError("refused")


async def test_each_connection_is_checked_again_when_the_answer_changes() -> None:
    """DNS rebinding: public when the URL was checked, loopback when the POST connects."""
    resolver = fake_resolver({"rebind.test": [PUBLIC]})
    guard = OutboundGuard(OutboundPolicy(), resolver=resolver)
    await guard.check("http://rebind.test:8080/hook")
    resolver.answers["rebind.test"] = ["127.0.0.1"]
    inner = RecordingBackend()
    backend = GuardedBackend(guard, inner)
    with pytest.raises(AddressNotAllowed, match="address not allowed"):
        await backend.connect_tcp("rebind.test", 8080)
    assert inner.attempts == []  # refused before any connection: nothing about the port
    # A public answer is connected to as the address that was checked, never by name.
    resolver.answers["rebind.test"] = [PUBLIC]
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.test", 8080)
    assert inner.attempts == [(PUBLIC, 8080)]


async def test_a_guarded_client_refuses_before_connecting_and_keeps_the_host() -> None:
    receiver = Receiver()
    await receiver.up()
    try:
        port = receiver.port
        answers = {"hooks.test": ["127.0.0.1"], "localhost": ["127.0.0.1", "::1"]}
        # Denied: loopback, however written; the receiver sees nothing.
        async with guarded_client(
            OutboundGuard(OutboundPolicy(), resolver=fake_resolver(answers))
        ) as client:
            for url in (
                f"http://127.0.0.1:{port}/hook",
                f"http://2130706433:{port}/hook",
                f"http://hooks.test:{port}/hook",
                f"http://localhost:{port}/hook",
            ):
                with pytest.raises(AddressNotAllowed):
                    await client.post(url, content=b"{}")
        assert receiver.requests == []
        # Allowed by an allow-list network: connects to the checked address, Host unchanged.
        policy = OutboundPolicy.parse("hooks.test, 127.0.0.0/8", None)
        async with guarded_client(OutboundGuard(policy, resolver=fake_resolver(answers))) as client:
            resp = await client.post(f"http://hooks.test:{port}/hook", content=b"{}")
        assert resp.status_code == 200
        [request] = receiver.requests
        assert request.headers["host"] == f"hooks.test:{port}"
    finally:
        await receiver.down()


async def test_redirects_are_not_followed() -> None:
    async with guarded_client(OutboundGuard(OutboundPolicy())) as client:
        assert client.follow_redirects is False
        assert client._trust_env is False  # no proxy from the environment
