"""Privacy-token upkeep as Baileys 7 does it: daily pruning of what the 28-day window left
behind, tokens taken from a history sync chunk, the `<tctoken t>` child of profile-picture and
presence stanzas, and the AB props re-fetch interval."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import pytest

from wahttp.wa.auth import Me
from wahttp.wa.auth.store import AuthStore, MemoryAuthStore
from wahttp.wa.binary import Node
from wahttp.wa.client import abprops, history, tctoken
from wahttp.wa.client.client import Client
from wahttp.wa.client.tctoken import BUCKET_SECONDS, TcToken
from wahttp.wa.jid import Jid
from wahttp.wa.proto.history_pb2 import HistorySync
from wahttp.wa.proto.message_pb2 import Message

WEEK = BUCKET_SECONDS
NOW = 2900 * WEEK + 1234
LIVE = NOW - WEEK  # inside the window
DEAD = tctoken.cutoff(NOW) - 1  # just outside it


async def _client() -> Client:
    client = Client(MemoryAuthStore())
    await client.load_creds()
    client.creds.me = Me(id="15550001111:3@s.whatsapp.net", lid="777000:3@lid")
    return client


async def _entry(client: Client, key: str) -> Any:
    return (await client.store.get("tctoken", [key])).get(key)


async def _put(store: AuthStore, entries: dict[str, Any], index: list[str]) -> None:
    index_value = {"token": json.dumps(index, separators=(",", ":")).encode()}
    await store.set({"tctoken": {**entries, "__index": index_value}})


# -- pruning ------------------------------------------------------------------------------------
async def test_prune_drops_expired_keeps_live_and_rewrites_the_index() -> None:
    store = MemoryAuthStore()
    entries = {
        "1@lid": TcToken(b"live", str(LIVE)).to_json(),
        "2@lid": TcToken(b"dead", str(DEAD)).to_json(),  # nothing left: deleted
        "3@lid": TcToken(b"dead", str(DEAD), LIVE).to_json(),  # our issue time lives on
        "4@lid": TcToken(b"", None, DEAD).to_json(),  # only an expired issue time: deleted
        "5@lid": TcToken(b"dead", str(DEAD), DEAD).to_json(),  # both expired: deleted
        "6@lid": TcToken(b"live", str(LIVE), DEAD).to_json(),  # the token keeps it as it is
        "8@lid": TcToken(b"other", str(LIVE)).to_json(),  # not in the index: left alone
    }
    await _put(store, entries, ["1@lid", "2@lid", "3@lid", "4@lid", "5@lid", "6@lid", "7@lid"])

    result = await tctoken.prune(store, NOW)

    assert result.written
    assert result.removed == ["2@lid", "4@lid", "5@lid"]
    assert result.cleared == ["3@lid"]
    assert result.kept == ["1@lid", "3@lid", "6@lid"]  # 7@lid had no entry: out of the index
    bucket = store._keys["tctoken"]
    assert sorted(bucket) == ["1@lid", "3@lid", "6@lid", "8@lid", "__index"]
    assert bucket["1@lid"] == entries["1@lid"]
    assert bucket["3@lid"] == {"token": b"", "senderTimestamp": LIVE}  # Baileys' cleared form
    assert bucket["6@lid"] == entries["6@lid"]
    assert bucket["__index"] == {"token": b'["1@lid","3@lid","6@lid"]'}
    assert await tctoken.read_index(store) == ["1@lid", "3@lid", "6@lid"]


async def test_prune_with_nothing_to_do_writes_nothing() -> None:
    store = MemoryAuthStore()
    assert not (await tctoken.prune(store, NOW)).written
    await _put(store, {"1@lid": TcToken(b"live", str(LIVE)).to_json()}, ["1@lid"])
    writes: list[object] = []
    original = store.set

    async def counting(changes: dict[str, dict[str, Any]]) -> None:
        writes.append(changes)
        await original(changes)

    store.set = counting  # type: ignore[method-assign]
    result = await tctoken.prune(store, NOW)
    assert not result.written and result.kept == ["1@lid"] and writes == []


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job runs while the client's connection is open: pretend it is."""
    monkeypatch.setattr(Client, "connected", property(lambda self: True))


@pytest.mark.usefixtures("connected")
async def test_the_daily_job_prunes_at_open_then_once_a_day() -> None:
    client = await _client()
    await _put(client.store, {"2@lid": TcToken(b"dead", "1000").to_json()}, ["2@lid"])
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise asyncio.CancelledError  # the connection closed

    with pytest.raises(asyncio.CancelledError):
        await tctoken.prune_daily(client, sleep=sleep)
    assert await tctoken.read_index(client.store) == []
    assert await _entry(client, "2@lid") is None
    assert client.tc_pruned_at is not None
    assert waits[0] == pytest.approx(tctoken.PRUNE_EVERY, abs=5)

    # A reconnect within the day does not prune again: it waits for the rest of the day.
    await _put(client.store, {"9@lid": TcToken(b"dead", "1000").to_json()}, ["9@lid"])
    waits.clear()
    with pytest.raises(asyncio.CancelledError):
        await tctoken.prune_daily(client, sleep=sleep)
    assert await _entry(client, "9@lid") is not None
    assert 0 < waits[0] <= tctoken.PRUNE_EVERY


@pytest.mark.usefixtures("connected")
async def test_a_failed_prune_is_tried_again_within_the_hour() -> None:
    client = await _client()

    async def broken(category: str, ids: list[str]) -> dict[str, Any]:
        raise OSError("store down")

    client.store.get = broken  # type: ignore[method-assign]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await tctoken.prune_daily(client, sleep=sleep)
    assert waits[0] == pytest.approx(tctoken.PRUNE_RETRY, abs=5)


# -- history sync -------------------------------------------------------------------------------
def _history() -> HistorySync:
    h = HistorySync(syncType=0)
    h.conversations.add(id="111@lid", tcToken=b"a", tcTokenTimestamp=LIVE, tcTokenSenderTimestamp=5)
    h.conversations.add(id="15552223333:4@s.whatsapp.net", tcToken=b"b", tcTokenTimestamp=LIVE)
    h.conversations.add(id="15554445555@c.us", tcToken=b"c", tcTokenTimestamp=LIVE)
    h.conversations.add(id="222@lid", tcToken=b"", tcTokenTimestamp=LIVE)  # no token
    h.conversations.add(id="333@lid", tcToken=b"d")  # no timestamp
    h.conversations.add(id="123-456@g.us", tcToken=b"e", tcTokenTimestamp=LIVE)  # a group
    h.conversations.add(id="0@s.whatsapp.net", tcToken=b"f", tcTokenTimestamp=LIVE)  # PSA
    h.conversations.add(id="not a jid", tcToken=b"g", tcTokenTimestamp=LIVE)
    return h


def test_history_tokens_are_those_of_people_with_a_token_and_a_time() -> None:
    got = tctoken.history_tokens(_history())
    assert got == [
        tctoken.HistoryToken(Jid("111", "lid"), b"a", LIVE, 5),
        tctoken.HistoryToken(Jid("15552223333", "s.whatsapp.net"), b"b", LIVE, None),
        tctoken.HistoryToken(Jid("15554445555", "s.whatsapp.net"), b"c", LIVE, None),
    ]


async def test_history_tokens_are_stored_under_the_lid_with_the_index() -> None:
    client = await _client()
    await client.signal.store_lid_mapping("4242", "15552223333")
    # Stored already: an equal timestamp wins over the history (Baileys compares with >=),
    # an older one is replaced but keeps our issue time.
    await _put(
        client.store,
        {
            "15554445555@s.whatsapp.net": TcToken(b"mine", str(LIVE)).to_json(),
            "111@lid": TcToken(b"old", str(LIVE - 10), 99).to_json(),
        },
        ["15554445555@s.whatsapp.net", "111@lid"],
    )
    stored = await tctoken.store_history_tokens(client, _history())
    assert stored == ["111@lid", "4242@lid"]
    assert await _entry(client, "111@lid") == {
        "token": b"a",
        "timestamp": str(LIVE),
        "senderTimestamp": 5,
    }
    assert await _entry(client, "4242@lid") == {"token": b"b", "timestamp": str(LIVE)}
    assert (await _entry(client, "15554445555@s.whatsapp.net"))["token"] == b"mine"
    assert await tctoken.read_index(client.store) == [
        "15554445555@s.whatsapp.net",
        "111@lid",
        "4242@lid",
    ]


def _notification(payload: bytes) -> Message:
    m = Message()
    m.protocolMessage.type = Message.ProtocolMessage.HISTORY_SYNC_NOTIFICATION
    m.protocolMessage.historySyncNotification.initialHistBootstrapInlinePayload = payload
    return m


async def test_an_inline_bootstrap_from_our_phone_brings_its_tokens() -> None:
    client = await _client()
    message = _notification(zlib.compress(_history().SerializeToString()))
    wrapped = Message()
    wrapped.deviceSentMessage.message.CopyFrom(message)
    note = history.notification_of(wrapped)
    assert note is not None
    await history.on_notification(client, note)
    assert await _entry(client, "111@lid") is not None
    assert history.notification_of(Message(conversation="hi")) is None


async def test_a_bad_or_oversized_payload_is_refused_not_decoded() -> None:
    with pytest.raises(history.HistoryError):
        history.decode_payload(b"not zlib")
    with pytest.raises(history.HistoryError):
        history.decode_payload(zlib.compress(b"\xff" * 10))  # not a protobuf
    bomb = zlib.compress(bytes(4096))
    with pytest.raises(history.HistoryError):
        history.decode_payload(bomb, limit=1024)
    client = await _client()
    note = history.notification_of(_notification(b"junk"))
    assert note is not None
    await history.on_notification(client, note)  # logged, not raised
    assert await client.store.all_keys() == {}


# -- tokens on other stanzas --------------------------------------------------------------------
async def _with_token(client: Client, key: str, ts: int) -> None:
    await client.store.set({"tctoken": {key: TcToken(b"tok", str(ts), 7).to_json()}})


async def test_profile_picture_iq_carries_the_token_with_its_t() -> None:
    client = await _client()
    await client.signal.store_lid_mapping("4242", "15552223333")
    await _with_token(client, "4242@lid", LIVE)
    iq = await tctoken.picture_query(client, Jid("15552223333", "s.whatsapp.net", 2), now=NOW)
    assert iq == Node(
        "iq",
        {
            "target": "15552223333@s.whatsapp.net",
            "to": "s.whatsapp.net",
            "type": "get",
            "xmlns": "w:profile:picture",
        },
        [
            Node(
                "picture",
                {"type": "preview", "query": "url"},
                [Node("tctoken", {"t": str(LIVE)}, b"tok")],
            )
        ],
    )
    # AB prop 9666 off: no token.
    client.ab_props.update(
        Node("props", {}, [Node("prop", {"config_code": "9666", "config_value": "false"})])
    )
    iq = await tctoken.picture_query(client, Jid("4242", "lid"), "image", now=NOW)
    assert iq.children()[0] == Node("picture", {"type": "image", "query": "url"})


async def test_no_token_for_ourselves_groups_or_an_expired_one() -> None:
    client = await _client()
    await _with_token(client, "15550001111@s.whatsapp.net", LIVE)
    await _with_token(client, "777000@lid", LIVE)
    await _with_token(client, "123-456@g.us", LIVE)
    for jid in ("15550001111@s.whatsapp.net", "777000@lid", "123-456@g.us"):
        iq = await tctoken.picture_query(client, Jid.parse(jid), now=NOW)
        assert iq.children()[0].children() == [], jid
    await _with_token(client, "5@lid", DEAD)
    assert await tctoken.stanza_tokens(client, Jid("5", "lid"), NOW) == []
    # The expired token is dropped, our issue time kept (as on a send).
    assert await _entry(client, "5@lid") == {"token": b"", "senderTimestamp": 7}


async def test_presence_subscribe_carries_the_token_whatever_the_props() -> None:
    client = await _client()
    await _with_token(client, "5@lid", LIVE)
    client.ab_props.update(
        Node("props", {}, [Node("prop", {"config_code": "9666", "config_value": "false"})])
    )
    node = await tctoken.presence_subscribe(client, Jid("5", "lid"), now=NOW)
    assert node.tag == "presence"
    assert node.attrs["to"] == "5@lid" and node.attrs["type"] == "subscribe" and node.attrs["id"]
    assert node.children() == [Node("tctoken", {"t": str(LIVE)}, b"tok")]
    bare = await tctoken.presence_subscribe(client, Jid("6", "lid"), now=NOW)
    assert bare.children() == []


# -- AB props refresh ---------------------------------------------------------------------------
def test_the_next_fetch_follows_the_answers_refresh() -> None:
    props = abprops.ABProps()
    assert abprops.next_fetch_in(props) == abprops.DEFAULT_REFRESH
    props.update(Node("props", {"hash": "h", "refresh": "600"}))
    assert abprops.next_fetch_in(props) == 600
    props.update(Node("props", {"hash": "h", "refresh": "0"}))
    assert abprops.next_fetch_in(props) == abprops.MIN_REFRESH
    props.update(Node("props", {"hash": "h", "refresh": "soon"}))
    assert abprops.next_fetch_in(props) == abprops.DEFAULT_REFRESH


async def test_the_daily_job_ends_with_the_connection() -> None:
    client = await _client()  # not connected
    await tctoken.prune_daily(client)  # returns at once, pruning nothing
    assert client.tc_pruned_at is None
