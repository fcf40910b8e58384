"""Jid parsing, Baileys-compatible formatting, helpers and signal addresses."""

from __future__ import annotations

import pytest

from wahttp.wa import jid as j
from wahttp.wa.jid import Jid, WireJid, split_wire_jid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5511999999999@s.whatsapp.net", Jid("5511999999999", "s.whatsapp.net")),
        ("5511:12@s.whatsapp.net", Jid("5511", "s.whatsapp.net", 12)),
        ("5511:0@s.whatsapp.net", Jid("5511", "s.whatsapp.net", 0)),
        ("123_1:2@lid", Jid("123", "lid", 2, 1)),
        ("123456789@lid", Jid("123456789", "lid")),
        ("@s.whatsapp.net", Jid("", "s.whatsapp.net")),
        ("120363025246125888@g.us", Jid("120363025246125888", "g.us")),
        ("123-456@g.us", Jid("123-456", "g.us")),
        ("status@broadcast", Jid("status", "broadcast")),
        ("1-123:4@interop", Jid("1-123", "interop", 4)),
        ("7:99@hosted", Jid("7", "hosted", 99)),
        ("server@c.us", Jid("server", "c.us")),
    ],
)
def test_parse(text: str, expected: Jid) -> None:
    assert Jid.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "abc", "abc@", "@", "a@b@c", "a:@b", "a:x@b", "a:1:2@b", "a_@b", "a_x@b", "a_1_2@b",
     "a:-1@b", "a:１@b", "a:12345678901@b"],
)  # fmt: skip
def test_parse_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        Jid.parse(text)


@pytest.mark.parametrize(
    ("jid", "text"),
    [
        (Jid("1", "s.whatsapp.net"), "1@s.whatsapp.net"),
        (Jid("1", "s.whatsapp.net", 3), "1:3@s.whatsapp.net"),
        # Like Baileys' jidEncode, device 0 and agent 0 are not printed.
        (Jid("1", "s.whatsapp.net", 0), "1@s.whatsapp.net"),
        (Jid("1", "s.whatsapp.net", None, 0), "1@s.whatsapp.net"),
        (Jid("1", "lid", 2, 1), "1_1:2@lid"),
        (Jid("1", "lid", None, 1), "1_1@lid"),
        (Jid("", "s.whatsapp.net"), "@s.whatsapp.net"),
    ],
)
def test_str_matches_jid_encode(jid: Jid, text: str) -> None:
    assert str(jid) == text


def test_round_trip_for_canonical_strings() -> None:
    for text in ("1@s.whatsapp.net", "1:3@s.whatsapp.net", "1_1:2@lid", "@s.whatsapp.net"):
        assert str(Jid.parse(text)) == text


def test_constructors_and_helpers() -> None:
    assert Jid.user_jid("+5511999") == Jid("5511999", j.S_WHATSAPP_NET)
    assert str(Jid.server_jid()) == "@s.whatsapp.net"
    with pytest.raises(ValueError):
        Jid.user_jid("55 11")
    device = Jid.parse("1_1:7@lid")
    assert device.to_non_ad() == Jid("1", "lid")
    assert Jid("1", "lid").with_device(3) == Jid("1", "lid", 3)
    assert device.is_lid() and device.is_user() and not device.is_pn()
    assert Jid.parse("1@s.whatsapp.net").is_pn()
    assert Jid.parse("1@g.us").is_group() and not Jid.parse("1@g.us").is_user()
    assert Jid.parse("status@broadcast").is_status_broadcast()
    assert Jid.parse("1@newsletter").is_newsletter()
    assert Jid.parse("1@hosted.lid").is_hosted()
    assert not Jid.server_jid().is_user()
    assert Jid("1", j.CALL).server == "call"


@pytest.mark.parametrize(
    ("text", "domain", "address"),
    [
        ("5511@s.whatsapp.net", 0, "5511.0"),
        ("5511:5@s.whatsapp.net", 0, "5511.5"),
        ("123@lid", 1, "123_1.0"),
        ("123:2@lid", 1, "123_1.2"),
        ("9:99@hosted", 128, "9_128.99"),
        ("9:99@hosted.lid", 129, "9_129.99"),
        ("9_5:3@s.whatsapp.net", 5, "9_5.3"),
    ],
)
def test_signal_address(text: str, domain: int, address: str) -> None:
    jid = Jid.parse(text)
    assert jid.domain_type == domain
    assert jid.signal_address() == address


def test_signal_address_rejects_what_baileys_rejects() -> None:
    with pytest.raises(ValueError):
        Jid.server_jid().signal_address()
    with pytest.raises(ValueError):
        Jid.parse("1:99@s.whatsapp.net").signal_address()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no-at-sign", None),
        ("1@s.whatsapp.net", WireJid("1", "s.whatsapp.net", 0, None)),
        ("1_7@s.whatsapp.net", WireJid("1", "s.whatsapp.net", 7, None)),
        ("1:2@g.us", WireJid("1", "g.us", 0, 2)),
        ("1_5:2@lid", WireJid("1", "lid", 1, 2)),  # the server wins over the agent
        ("1_128:2@s.whatsapp.net", WireJid("1", "s.whatsapp.net", 128, 2)),
        ("a:@b", WireJid("a", "b", 0, None)),  # empty device is "no device"
        # Devices go through JavaScript's Number(), agents through parseInt(), then & 0xff.
        ("a:b@c", WireJid("a", "c", 0, 0)),
        ("a: 7 @c", WireJid("a", "c", 0, 7)),
        ("a:0x1f@c", WireJid("a", "c", 0, 31)),
        ("a:1e2@c", WireJid("a", "c", 0, 100)),
        ("a:-3@c", WireJid("a", "c", 0, 253)),
        ("a:1.9@c", WireJid("a", "c", 0, 1)),
        ("a:300@c", WireJid("a", "c", 0, 44)),
        ("a:Infinity@c", WireJid("a", "c", 0, 0)),
        ("a:1_0@c", WireJid("a", "c", 0, 0)),
        ("a_0x10:1@c", WireJid("a", "c", 16, 1)),
        ("a_12abc:1@c", WireJid("a", "c", 12, 1)),
        ("a_-5:1@c", WireJid("a", "c", 251, 1)),
        ("a_" + "9" * 400 + ":1@c", WireJid("a", "c", 0, 1)),
        ("a:1:2@c", WireJid("a", "c", 0, 1)),
        ("x@y@z", WireJid("x", "y@z", 0, None)),
    ],
)
def test_split_wire_jid_mirrors_baileys_jid_decode(text: str, expected: WireJid | None) -> None:
    assert split_wire_jid(text) == expected
