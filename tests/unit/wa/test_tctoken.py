"""Privacy-token rules (7-day buckets, 4 kept), their storage in Baileys' layout, AB props."""

from __future__ import annotations

import json

from wahttp.wa.auth.bufferjson import to_json
from wahttp.wa.auth.store import MemoryAuthStore
from wahttp.wa.binary import Node
from wahttp.wa.client import abprops, ack_errors, tctoken
from wahttp.wa.client.client import Client
from wahttp.wa.client.tctoken import BUCKET_SECONDS, TcToken

WEEK = BUCKET_SECONDS
NOW = 2900 * WEEK + 1234  # some time inside bucket 2900


def test_bucket_constants_match_baileys_and_whatsmeow() -> None:
    assert tctoken.BUCKET_SECONDS == 604800
    assert tctoken.NUM_BUCKETS == 4
    assert tctoken.INDEX_KEY == "__index"


def test_a_token_lives_for_the_current_bucket_and_the_three_before() -> None:
    oldest_kept = (2900 - 3) * WEEK
    assert tctoken.cutoff(NOW) == oldest_kept
    assert not tctoken.is_expired(oldest_kept, NOW)
    assert tctoken.is_expired(oldest_kept - 1, NOW)
    assert not tctoken.is_expired(str(NOW), NOW)
    assert tctoken.is_expired(None, NOW)
    assert tctoken.is_expired("not a number", NOW)
    assert not tctoken.is_expired(f"{NOW}abc", NOW)  # parseInt takes the leading digits


def test_our_token_is_issued_again_only_in_a_later_bucket() -> None:
    assert tctoken.should_send_new(None, NOW)
    assert not tctoken.should_send_new(2900 * WEEK, NOW)  # same bucket
    assert not tctoken.should_send_new(NOW, NOW)
    assert tctoken.should_send_new(2900 * WEEK - 1, NOW)  # the bucket before


def test_regular_users_exclude_psa_and_bots() -> None:
    from wahttp.wa.jid import Jid

    assert tctoken.is_regular_user(Jid("15551234567", "s.whatsapp.net"))
    assert tctoken.is_regular_user(Jid("123456789", "lid"))
    assert not tctoken.is_regular_user(Jid("0", "s.whatsapp.net"))
    assert not tctoken.is_regular_user(Jid("13135550002", "s.whatsapp.net"))
    assert not tctoken.is_regular_user(Jid("13165550042", "s.whatsapp.net"))
    assert not tctoken.is_regular_user(Jid("123-456", "g.us"))


def test_the_value_shape_is_baileys_json() -> None:
    entry = TcToken(token=b"\x01\x02", timestamp="1700000000", sender_timestamp=1700000100)
    assert to_json(entry.to_json()) == {
        "token": {"type": "Buffer", "data": "AQI="},
        "timestamp": "1700000000",
        "senderTimestamp": 1700000100,
    }
    assert TcToken.from_json(entry.to_json()) == entry
    # Only our issue time kept (Baileys' cleared form): an empty token, no timestamp.
    assert TcToken(sender_timestamp=5).to_json() == {"token": b"", "senderTimestamp": 5}
    assert TcToken.from_json({"token": b"x", "timestamp": 17}) == TcToken(b"x", "17", None)
    assert TcToken.from_json("junk") is None


async def _client() -> Client:
    client = Client(MemoryAuthStore())
    await client.load_creds()
    return client


def _notification(
    t: str | None, content: bytes | None = b"tok", kind: str = "trusted_contact"
) -> Node:
    attrs = {"jid": "15550001111:3@s.whatsapp.net", "type": kind}
    if t is not None:
        attrs["t"] = t
    return Node(
        "notification",
        {
            "from": "15552223333@s.whatsapp.net",
            "sender_lid": "99887766@lid",
            "type": "privacy_token",
        },
        [Node("tokens", {}, [Node("token", attrs, content)])],
    )


async def test_a_notification_is_stored_under_the_issuers_lid_with_the_index() -> None:
    client = await _client()
    await tctoken.on_notification(client, _notification("1700000000"))
    found = await client.store.get("tctoken", ["99887766@lid", "__index"])
    assert found["99887766@lid"] == {"token": b"tok", "timestamp": "1700000000"}
    assert json.loads(found["__index"]["token"]) == ["99887766@lid"]


async def test_without_sender_lid_the_known_lid_of_the_pn_is_the_key() -> None:
    client = await _client()
    await client.signal.store_lid_mapping("4242", "15552223333")
    node = _notification("1700000000")
    del node.attrs["sender_lid"]
    await tctoken.on_notification(client, node)
    assert await client.store.get("tctoken", ["4242@lid"]) != {}


async def test_older_timeless_or_foreign_tokens_are_not_stored() -> None:
    client = await _client()
    await tctoken.on_notification(client, _notification("1700000500", b"new"))
    await tctoken.on_notification(client, _notification("1700000000", b"older"))
    await tctoken.on_notification(client, _notification(None, b"timeless"))
    await tctoken.on_notification(client, _notification("1700000900", b"x", kind="other"))
    await tctoken.on_notification(client, _notification("1700000900", None))
    stored = await tctoken.load(client.store, "99887766@lid")
    assert stored == TcToken(b"new", "1700000500", None)
    # A newer one replaces it and keeps our issue time.
    await client.store.set(
        {"tctoken": {"99887766@lid": {**stored.to_json(), "senderTimestamp": 7}}}
    )
    await tctoken.on_notification(client, _notification("1700000600", b"newer"))
    assert await tctoken.load(client.store, "99887766@lid") == TcToken(b"newer", "1700000600", 7)


async def test_the_index_merges_and_survives_junk() -> None:
    store = MemoryAuthStore()
    await store.set({"tctoken": {"__index": {"token": b"not json"}}})
    assert await tctoken.read_index(store) == []
    await store.set({"tctoken": await tctoken.index_write(store, ["a@lid"])})
    await store.set({"tctoken": await tctoken.index_write(store, ["b@lid", "a@lid", "__index"])})
    assert await tctoken.read_index(store) == ["a@lid", "b@lid"]


def test_issue_query_shape() -> None:
    from wahttp.wa.jid import Jid

    node = tctoken.issue_query([Jid("15551234567", "s.whatsapp.net", 2)], 1700000000)
    assert node.attrs == {"to": "s.whatsapp.net", "type": "set", "xmlns": "privacy"}
    token = node.children()[0].children()[0]
    assert token.tag == "token"
    assert token.attrs == {
        "jid": "15551234567@s.whatsapp.net",
        "t": "1700000000",
        "type": "trusted_contact",
    }
    assert tctoken.token_node(b"abc") == Node("tctoken", {}, b"abc")


def test_ab_props_parse_defaults_and_names() -> None:
    props = abprops.ABProps()
    assert props.enabled(abprops.PRIVACY_TOKEN_ON_1_TO_1)  # Baileys' default: on
    assert not props.enabled(abprops.LID_TRUSTED_TOKEN_ISSUE_TO_LID)
    assert not props.enabled(12345)
    answer = Node(
        "props",
        {"protocol": "1", "hash": "h1", "refresh": "600"},
        [
            Node("prop", {"config_code": "10518", "config_value": "false"}),
            Node("prop", {"name": "lid_trusted_token_issue_to_lid", "value": "1"}),
        ],
    )
    props.update(answer)
    assert props.hash == "h1" and props.refresh == 600 and props.fetched
    assert not props.enabled(10518)
    assert props.enabled(14303)  # given by name
    assert props.get(10518) == "false"
    # An answer without props (the hash matched) keeps what we had.
    props.update(Node("props", {"protocol": "1", "hash": "h2"}))
    assert props.hash == "h2" and not props.enabled(10518)


def test_props_query_carries_the_last_hash() -> None:
    assert abprops.props_query(None).children()[0].attrs == {"protocol": "1"}
    node = abprops.props_query("abc")
    assert node.attrs == {"to": "s.whatsapp.net", "xmlns": "abt", "type": "get"}
    assert node.children()[0] == Node("props", {"protocol": "1", "hash": "abc"})


def test_ack_error_reasons() -> None:
    assert ack_errors.parse("463") == 463
    assert ack_errors.parse("") is None and ack_errors.parse("x") is None
    assert "privacy token" in ack_errors.reason(463)
    assert "peer message" in ack_errors.reason(479)
    assert ack_errors.reason(421) == "the server refused the message (error 421)"
