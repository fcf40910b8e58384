"""Reporting tokens: which messages get one, the pruning, and the simulator's check."""

from __future__ import annotations

import os

from wahttp.wa.client import reporting
from wahttp.wa.client.messages import Message, text_message


def test_text_gets_a_token_that_validates() -> None:
    msg = text_message("hello")
    node = reporting.for_send(msg, "3EB0ABC", "15550001111@s.whatsapp.net")
    assert node is not None and node.tag == "reporting"
    token = reporting.token_of(node.__class__("message", {}, [node]))
    assert token is not None and len(token) == 16
    encoded = msg.SerializeToString()
    assert reporting.valid(token, encoded, "3EB0ABC", "15550001111@s.whatsapp.net")
    assert not reporting.valid(token, encoded, "3EB0ABD", "15550001111@s.whatsapp.net")
    assert not reporting.valid(token, encoded, "3EB0ABC", "15550001112@s.whatsapp.net")
    assert not reporting.valid(bytes(16), encoded, "3EB0ABC", "15550001111@s.whatsapp.net")
    # Baileys' padded variants (n = 8: the padding is part of the content) validate too.
    padded = reporting.compute(
        encoded + bytes([8]) * 8, msg.messageContextInfo.messageSecret, "I", "j@lid", "j@lid"
    )
    assert padded is not None and reporting.valid(padded, encoded, "I", "j@lid")


def test_which_messages_get_one() -> None:
    assert reporting.for_send(Message(), "I", "j@lid") is None  # no secret
    reaction = Message()
    reaction.reactionMessage.text = "x"
    reaction.messageContextInfo.messageSecret = os.urandom(32)
    assert not reporting.should_include(reaction)
    only_context = Message()
    only_context.messageContextInfo.messageSecret = os.urandom(32)
    assert reporting.for_send(only_context, "I", "j@lid") is None  # nothing reportable


def test_prune_keeps_listed_fields_sorted_and_refuses_garbage() -> None:
    # field 6 {1: "a", 2: "drop"}, field 1 "b", field 2 "drop"
    data = b"\x32\x06\x0a\x01a\x12\x01z" + b"\x0a\x01b" + b"\x12\x01z"
    assert reporting.prune(data, reporting.FIELDS) == b"\x0a\x01b" + b"\x32\x03\x0a\x01a"
    for bad in (b"\x0a\x05ab", b"\x0b", b"\x09\x01"):
        assert reporting.compute(bad, b"s" * 32, "I", "j", "j") is None
