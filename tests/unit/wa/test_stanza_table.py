"""docs/stanzas.md is true: each row's stanza, fed to the client's dispatch, does what the row says.

The table's wahttp column starts with "processed" (the stanza has an effect: an event, a store
write, a stanza sent, a background job, a close), "acked" (nothing but the `<ack>`) or "not
yet" (the documented fallback). Every notification, receipt and call gets exactly one `<ack>`.
The dispatch tables (`handlers.TABLE`, `notification.HANDLERS`, `ib.HANDLERS`, ...) must list
what the doc lists, so a handler added without a row (or a row without a handler) fails here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wahttp.wa.auth import Me, MemoryAuthStore
from wahttp.wa.binary import Node
from wahttp.wa.client import call, handlers, ib, notification
from wahttp.wa.client.client import Client
from wahttp.wa.client.config import ClientConfig
from wahttp.wa.client.e2e import encrypt_for, start_session
from wahttp.wa.client.events import (
    CallOffer,
    ContactPicture,
    MessageAck,
    MessageReceived,
    OfflineSyncCompleted,
    UndecryptableMessage,
)
from wahttp.wa.client.lane import Job, Lane
from wahttp.wa.client.messages import pad, text_message
from wahttp.wa.client.pair_code import wrap_public
from wahttp.wa.close import CloseCode
from wahttp.wa.crypto import KeyPair
from wahttp.wa.proto import adv_pb2
from wahttp.wa.signal.builder import PreKeyBundle

DOC = Path(__file__).resolve().parents[3] / "docs" / "stanzas.md"
STATUSES = ("processed", "acked", "not yet")
ACKED_TAGS = ("notification", "receipt", "call")  # each of these gets exactly one <ack>

ME = "15550001111:3@s.whatsapp.net"
ME_LID = "99990001111:3@lid"
CONTACT = "15550002222@s.whatsapp.net"


# -- the doc ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    section: str
    stanza: str  # the first cell
    wahttp: str  # the last cell

    @property
    def status(self) -> str:
        for word in STATUSES:
            if self.wahttp.startswith(word):
                return word
        raise AssertionError(f"{self.stanza}: the wahttp column starts with none of {STATUSES}")

    def spans(self) -> list[str]:
        return re.findall(r"`([^`]+)`", self.stanza)

    def names(self) -> list[str]:
        """The stanza tags (top level) or notification types the first cell names."""
        if self.section == "notification":
            return [s for s in self.spans() if not s.startswith("<")]
        return [m.group(1) for s in self.spans() if (m := re.match(r"<?([\w:]+)", s))]

    def ib_child(self) -> str | None:
        """The child of an `<ib><child ...>` row."""
        tags = re.findall(r"<([\w:]+)", self.spans()[0]) if self.spans() else []
        return tags[1] if tags[:1] == ["ib"] and len(tags) > 1 else None


SECTIONS = {"Top-level stanzas": "top", "Notifications": "notification"}


def parse_rows() -> list[Row]:
    rows: list[Row] = []
    section: str | None = None
    header = False
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:]
            section = next((v for k, v in SECTIONS.items() if title.startswith(k)), None)
            header = True
            continue
        if section is None or not line.startswith("|") or line.startswith("|---"):
            continue
        if header:  # the column names
            header = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append(Row(section, cells[0], cells[-1]))
    return rows


ROWS = parse_rows()


# -- a client that records what it does ------------------------------------------------------
class RecordingStore(MemoryAuthStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[dict[str, dict[str, Any]]] = []

    async def set(self, changes: dict[str, dict[str, Any]]) -> None:
        self.writes.append(changes)
        await super().set(changes)


class InlineLane(Lane):
    """Runs each job at once, so its effect is there when the dispatch returns."""

    async def put(self, job: Job) -> None:
        await job()


class Rig(Client):
    def __init__(self, config: ClientConfig) -> None:
        self.recording = RecordingStore()
        super().__init__(self.recording, config, session_id="t")
        self.sent: list[Node] = []
        self.spawned: list[str] = []
        self.closed: list[tuple[int, str]] = []
        self.events: list[object] = []
        self.add_event_handler(self.events.append)
        self.receipts = InlineLane("test")

    async def send_node(self, node: Node) -> None:
        self.sent.append(node)

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        # Background jobs (syncs, uploads) would talk to a server: record that one started.
        self.spawned.append(name)
        if inspect.iscoroutine(coro):
            coro.close()
        return asyncio.ensure_future(asyncio.sleep(0))

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))

    async def dispatch(self, node: Node) -> None:
        await self._dispatch(node)

    def acks(self) -> list[Node]:
        return [n for n in self.sent if n.tag == "ack"]

    def others(self) -> list[Node]:
        return [n for n in self.sent if n.tag != "ack"]


async def linked_rig(config: ClientConfig | None = None) -> Rig:
    rig = Rig(config or ClientConfig())
    creds = await rig.load_creds()
    creds.me = Me(ME, ME_LID, "Me")
    creds.account = adv_pb2.ADVSignedDeviceIdentity(
        details=b"d", accountSignatureKey=b"k" * 32, accountSignature=b"s", deviceSignature=b"x"
    )
    await rig.save_creds()
    rig.recording.writes.clear()
    return rig


# -- what each row's stanzas are and what they do --------------------------------------------
Check = Callable[[Rig, Node], None]
Setup = Callable[[Rig], Awaitable[Node | None]]


@dataclass
class Probe:
    node: Node | None  # None: `setup` builds it
    status: str  # the row's status, or one its text names for this case ("others acked")
    effect: Check | None = None
    setup: Setup | None = None
    config: ClientConfig = field(default_factory=ClientConfig)
    logged: str | None = None  # a word the debug log must name
    errors_ok: bool = False  # the effect is an error logged (a refused login)


def notif(kind: str, *children: Node, **attrs: str) -> Node:
    base = {"id": "n1", "from": CONTACT, "type": kind, "t": "1700000000"}
    return Node("notification", {**base, **attrs}, list(children) or None)


def call_node(child: Node) -> Node:
    return Node("call", {"id": "c1", "from": CONTACT, "t": "1700000000"}, [child])


def event(kind: type) -> Check:
    def check(rig: Rig, node: Node) -> None:
        assert any(isinstance(e, kind) for e in rig.events), f"no {kind.__name__} in {rig.events}"

    return check


def spawned(name: str) -> Check:
    def check(rig: Rig, node: Node) -> None:
        assert name in rig.spawned, rig.spawned

    return check


def sent(tag: str, **attrs: str) -> Check:
    def check(rig: Rig, node: Node) -> None:
        assert any(
            n.tag == tag and all(n.attr(k) == v for k, v in attrs.items()) for n in rig.others()
        ), rig.sent

    return check


def closed(code: int) -> Check:
    def check(rig: Rig, node: Node) -> None:
        assert [c for c, _ in rig.closed] == [code], rig.closed

    return check


def wrote(category: str) -> Check:
    def check(rig: Rig, node: Node) -> None:
        assert any(category in w for w in rig.recording.writes), rig.recording.writes

    return check


def nothing_sent(rig: Rig, node: Node) -> None:
    assert not rig.sent and not rig.events and not rig.spawned and not rig.closed


async def one_to_one_message(rig: Rig) -> Node:
    """A pkmsg from a contact who started a session from our published keys."""
    alice = await linked_rig()
    assert alice.creds.me is not None
    alice.creds.me = Me("15550002222:0@s.whatsapp.net")
    creds = rig.creds
    spk = creds.signed_pre_key
    bundle = PreKeyBundle(
        registration_id=creds.registration_id,
        device_id=3,
        identity_key=creds.signed_identity_key.public,
        signed_pre_key_id=spk.key_id,
        signed_pre_key=spk.key_pair.public,
        signed_pre_key_signature=spk.signature,
    )
    await start_session(alice.signal, rig.me, bundle)
    plaintext = pad(text_message("hello").SerializeToString())
    kind, data = await encrypt_for(alice.signal, rig.me, plaintext)
    attrs = {"id": "m1", "from": CONTACT, "t": "1700000000", "type": "text", "notify": "Al"}
    return Node("message", attrs, [Node("enc", {"v": "2", "type": kind}, data)])


def got_text(rig: Rig, node: Node) -> None:
    texts = [e.text for e in rig.events if isinstance(e, MessageReceived)]
    assert texts == ["hello"], rig.events
    assert [n.tag for n in rig.others()] == ["receipt"]


def resolves_ack(rig: Rig, node: Node) -> None:
    fut = rig._acks["s1"]
    assert fut.done() and fut.result() is node


async def waiting_for_ack(rig: Rig) -> Node:
    rig._acks["s1"] = asyncio.get_running_loop().create_future()
    return Node("ack", {"class": "message", "id": "s1", "from": CONTACT, "t": "1"})


def routing_kept(rig: Rig, node: Node) -> None:
    assert rig.creds.routing_info == b"\x08\x02"


async def primary_hello(rig: Rig) -> Node:
    """Step 2 of pairing by code: the phone's wrapped ephemeral key and identity."""
    creds = rig.creds
    creds.pairing_code = "ABCDEFGH"
    ephemeral, identity = KeyPair.generate(), KeyPair.generate()
    reg = Node(
        "link_code_companion_reg",
        {},
        [
            Node("link_code_pairing_ref", {}, b"ref"),
            Node("primary_identity_pub", {}, identity.public),
            Node(
                "link_code_pairing_wrapped_primary_ephemeral_pub",
                {},
                wrap_public("ABCDEFGH", ephemeral.public),
            ),
        ],
    )
    return notif("link_code_companion_reg", reg, **{"from": "s.whatsapp.net"})


def cached_contact(rig_setup: Callable[[Rig], Node]) -> Setup:
    async def setup(rig: Rig) -> Node:
        rig.device_cache["15550002222"] = (0.0, [0, 1])
        return rig_setup(rig)

    return setup


def contact_forgotten(rig: Rig, node: Node) -> None:
    assert "15550002222" not in rig.device_cache


def own_devices(rig: Rig, node: Node) -> None:
    assert rig.device_cache[rig.me.user][1] == [0, 3, 5]
    assert any("device-list" in w for w in rig.recording.writes), rig.recording.writes


def own_picture(rig: Rig, node: Node) -> None:
    pictures = [e for e in rig.events if isinstance(e, ContactPicture)]
    assert [p.jid for p in pictures] == ["15550001111@s.whatsapp.net"]


def status_event(status: str) -> Check:
    def check(rig: Rig, node: Node) -> None:
        acks = [e for e in rig.events if isinstance(e, MessageAck)]
        assert [a.status for a in acks] == [status], rig.events

    return check


def rejected_first(rig: Rig, node: Node) -> None:
    offers = [e for e in rig.events if isinstance(e, CallOffer)]
    assert [o.rejected for o in offers] == [True]
    assert [n.tag for n in rig.sent] == ["call", "ack"]
    assert rig.sent[0].children()[0].tag == "reject"


def missed_not_rejected(rig: Rig, node: Node) -> None:
    """A call from the offline backlog rang while we were away: an event, no reject."""
    offers = [e for e in rig.events if isinstance(e, CallOffer)]
    assert [(o.offline, o.rejected) for o in offers] == [(True, False)]
    assert [n.tag for n in rig.sent] == ["ack"]


def retry_receipt(rig: Rig, node: Node) -> None:
    assert any(isinstance(e, UndecryptableMessage) for e in rig.events)
    assert [n.attr("type") for n in rig.others()] == ["retry"]


def outdated(rig: Rig, node: Node) -> None:
    closed(405)(rig, node)
    assert "WAHTTP_WA_VERSION" in rig.closed[0][1]


def registered(rig: Rig, node: Node) -> None:
    assert rig.creds.registered and rig.creds.me is not None and rig.creds.me.lid == "777:3@lid"
    assert rig.spawned == ["wa-login"]


GROUP_MSG = Node(
    "message",
    {"id": "g1", "from": "120363000000000000@g.us", "participant": CONTACT, "type": "text"},
    [Node("enc", {"v": "2", "type": "skmsg"}, b"\x33" * 40)],
)

PICTURE = "`picture` (`<set jid id author>`, `<add>`, `<delete jid author>`)"
CASES: dict[str, list[Probe]] = {
    # -- top-level stanzas
    "`<message>` 1:1 (pkmsg/msg)": [
        Probe(None, "processed", got_text, setup=one_to_one_message),
    ],
    "`<message>` group (skmsg)": [Probe(GROUP_MSG, "not yet", retry_receipt)],
    "`<receipt>` (delivered, read, played, retry, sender, peer_msg, hist_sync)": [
        Probe(
            Node("receipt", {"id": "r1", "from": CONTACT}), "processed", status_event("delivered")
        ),
        *[
            Probe(
                Node("receipt", {"id": "r1", "from": CONTACT, "type": t}),
                "processed",
                status_event(t),
            )
            for t in ("read", "played")
        ],
        Probe(
            Node("receipt", {"id": "r1", "from": CONTACT, "type": "retry"}, [Node("retry", {})]),
            "processed",
            spawned("wa-retry"),
        ),
        *[
            Probe(Node("receipt", {"id": "r1", "from": CONTACT, "type": t}), "acked")
            for t in ("sender", "peer_msg", "hist_sync")
        ],
    ],
    '`<ack class="message">`': [Probe(None, "processed", resolves_ack, setup=waiting_for_ack)],
    "`<iq>` from the server (pair-device, ping)": [
        Probe(
            Node(
                "iq",
                {"id": "p1", "from": "s.whatsapp.net", "type": "get", "xmlns": "urn:xmpp:ping"},
            ),
            "processed",
            sent("iq", id="p1", type="result"),
        ),
        Probe(
            Node(
                "iq",
                {"id": "q1", "from": "s.whatsapp.net", "type": "set", "xmlns": "md"},
                [Node("pair-device", {}, [Node("ref", {}, b"ref-1")])],
            ),
            "processed",
            spawned("wa-qr"),
        ),
    ],
    "`<ib><dirty type timestamp>`": [
        Probe(
            Node(
                "ib",
                {"from": "s.whatsapp.net"},
                [Node("dirty", {"type": "account_sync", "timestamp": "5"})],
            ),
            "processed",
            sent("iq", xmlns="urn:xmpp:whatsapp:dirty", type="set"),
        ),
    ],
    "`<ib><offline_preview count message notification receipt call appdata>`": [
        Probe(
            Node("ib", {}, [Node("offline_preview", {"count": "3", "message": "1"})]),
            "processed",
            sent("ib"),
        ),
    ],
    "`<ib><offline count>`": [
        Probe(
            Node("ib", {}, [Node("offline", {"count": "3"})]),
            "processed",
            event(OfflineSyncCompleted),
            logged="offline",
        ),
    ],
    "`<ib><edge_routing><routing_info>`": [
        Probe(
            Node("ib", {}, [Node("edge_routing", {}, [Node("routing_info", {}, b"\x08\x02")])]),
            "processed",
            routing_kept,
        ),
    ],
    "`<ib><downgrade_webclient>`": [
        Probe(Node("ib", {}, [Node("downgrade_webclient", {})]), "processed", closed(411)),
    ],
    "`<call>` offer / offer_notice": [
        *[
            Probe(
                call_node(
                    Node(tag, {"call-id": "C1", "call-creator": CONTACT}, [Node("audio", {})])
                ),
                "processed",
                event(CallOffer),
            )
            for tag in ("offer", "offer_notice")
        ],
        Probe(
            call_node(Node("offer", {"call-id": "C1", "call-creator": CONTACT})),
            "processed",
            rejected_first,
            config=ClientConfig(reject_calls=True),
        ),
        Probe(
            Node(
                "call",
                {"id": "c1", "from": CONTACT, "t": "1700000000", "offline": "3"},
                [Node("offer", {"call-id": "C1", "call-creator": CONTACT})],
            ),
            "processed",
            missed_not_rejected,
            config=ClientConfig(reject_calls=True),
        ),
    ],
    "`<call>` terminate, reject, accept, preaccept, transport, relaylatency": [
        Probe(call_node(Node(tag, {"call-id": "C1", "call-creator": CONTACT})), "acked", logged=tag)
        for tag in ("terminate", "reject", "accept", "preaccept", "transport", "relaylatency")
    ],
    "`<success>`": [
        Probe(Node("success", {"lid": "777:3@lid", "t": "1"}), "processed", registered),
    ],
    "`<failure>`, `<stream:error>`, `xmlstreamend`": [
        Probe(Node("failure", {"reason": "405"}), "processed", outdated, errors_ok=True),
        Probe(Node("failure", {"reason": "401"}), "processed", closed(401)),
        Probe(Node("stream:error", {"code": "515"}), "processed", closed(515)),
        Probe(Node("xmlstreamend", {}), "processed", closed(CloseCode.TRANSPORT_CLOSED)),
    ],
    "`<presence>`, `<chatstate>`": [
        Probe(Node("presence", {"from": CONTACT, "type": "available"}), "not yet", nothing_sent),
        Probe(
            Node("chatstate", {"from": CONTACT}, [Node("composing", {})]), "not yet", nothing_sent
        ),
    ],
    # -- notifications
    "`privacy_token`": [
        Probe(
            notif(
                "privacy_token",
                Node(
                    "tokens",
                    {},
                    [
                        Node(
                            "token",
                            {"jid": ME, "t": "1700000000", "type": "trusted_contact"},
                            b"tok",
                        )
                    ],
                ),
            ),
            "processed",
            wrote("tctoken"),
        ),
    ],
    "`encrypt` (`<count>`)": [
        Probe(
            notif("encrypt", Node("count", {"value": "3"}), **{"from": "s.whatsapp.net"}),
            "processed",
            spawned("wa-prekeys"),
        ),
    ],
    "`encrypt` (`<identity>`)": [
        Probe(
            None,
            "processed",
            contact_forgotten,
            setup=cached_contact(lambda rig: notif("encrypt", Node("identity", {}, b"\x05" * 33))),
        ),
    ],
    "`devices`": [
        Probe(
            None,
            "processed",
            contact_forgotten,
            setup=cached_contact(
                lambda rig: notif("devices", Node("add", {}, [Node("device", {"jid": CONTACT})]))
            ),
        ),
    ],
    "`link_code_companion_reg`": [
        Probe(None, "processed", spawned("wa-link-code-finish"), setup=primary_hello),
    ],
    "`server_sync`": [
        Probe(
            notif("server_sync", Node("collection", {"name": "regular_high", "version": "3"})),
            "processed",
            spawned("wa-appstate"),
        ),
    ],
    "`account_sync` `<devices dhash><device jid>…`": [
        Probe(
            notif(
                "account_sync",
                Node(
                    "devices",
                    {"dhash": "h"},
                    [
                        Node("device", {"jid": f"15550001111{d}@s.whatsapp.net"})
                        for d in ("", ":3", ":5")
                    ],
                ),
                **{"from": "15550001111@s.whatsapp.net"},
            ),
            "processed",
            own_devices,
        ),
    ],
    "`account_sync` `<picture/>`": [
        Probe(notif("account_sync", Node("picture", {})), "processed", own_picture),
    ],
    "`account_sync` `<disappearing_mode>`, `<blocklist>`, `<privacy>`": [
        Probe(notif("account_sync", Node(tag, {})), "acked", logged=tag)
        for tag in ("disappearing_mode", "blocklist", "privacy")
    ],
    PICTURE: [
        Probe(
            notif("picture", Node(tag, {"jid": CONTACT, "id": "9", "author": CONTACT})),
            "processed",
            event(ContactPicture),
        )
        for tag in ("set", "add", "delete")
    ],
    "`w:gp2`": [Probe(notif("w:gp2", Node("add", {}), **{"from": "120363@g.us"}), "acked")],
    "`mediaretry`": [Probe(notif("mediaretry", Node("rmr", {"jid": CONTACT})), "acked")],
    "`mex`": [Probe(notif("mex", Node("update", {"op_name": "x"})), "acked")],
    "`business`, `newsletter`, `status`": [
        Probe(notif(kind, Node("x", {})), "acked") for kind in ("business", "newsletter", "status")
    ],
    "anything else": [
        Probe(notif("some_future_type", Node("x", {})), "acked", logged="some_future_type")
    ],
}


# -- the tests --------------------------------------------------------------------------------
def test_the_doc_has_the_rows_this_test_knows() -> None:
    assert [r.stanza for r in ROWS] == list(CASES), "a row of docs/stanzas.md has no case here"
    for row in ROWS:
        assert row.status in STATUSES  # raises with the row's name otherwise


def _probes() -> list[Any]:
    return [
        pytest.param(row, i, id=f"{n}-{(row.names() or ['other'])[0]}-{i}")
        for n, row in enumerate(ROWS)
        for i in range(len(CASES.get(row.stanza, [])))
    ]


@pytest.mark.parametrize(("row", "index"), _probes())
async def test_each_row_does_what_it_says(
    row: Row, index: int, caplog: pytest.LogCaptureFixture
) -> None:
    probe = CASES[row.stanza][index]
    # A case whose status differs from the row's must be one the row's text names.
    assert probe.status == row.status or probe.status in row.wahttp, (row, probe.status)
    rig = await linked_rig(probe.config)
    node = probe.node if probe.setup is None else await probe.setup(rig)
    assert node is not None
    rig.recording.writes.clear()
    caplog.set_level(logging.DEBUG, logger="wahttp")
    await rig.dispatch(node)

    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    if node.tag in ACKED_TAGS:
        acks = rig.acks()
        assert len(acks) == 1, rig.sent
        ack = acks[0].attrs
        assert ack["class"] == node.tag and ack["id"] == node.attr("id")
        assert ack["to"] == node.attr("from")
        assert ack.get("type") == node.attr("type")
        assert rig.sent[-1].tag == "ack"  # after the effect (and a call's reject)
    if probe.status == "processed":
        assert probe.effect is not None or probe.logged is not None
        if probe.effect is not None:
            probe.effect(rig, node)
        assert probe.errors_ok or not problems, [r.getMessage() for r in problems]
    elif probe.status == "acked":
        assert not rig.others() and not rig.events and not rig.spawned and not rig.closed
        assert not rig.recording.writes
        assert not problems, [r.getMessage() for r in problems]
    else:
        assert probe.effect is not None, "a 'not yet' case checks the documented fallback"
        probe.effect(rig, node)
    if probe.logged is not None:
        messages = [r.getMessage() for r in caplog.records]
        assert any(probe.logged in m for m in messages), messages


def _names(section: str, *statuses: str) -> set[str]:
    return {n for r in ROWS if r.section == section and r.status in statuses for n in r.names()}


def test_top_level_handlers_are_in_the_doc() -> None:
    # Notifications have a table of their own; "not yet" stanzas (presence) have no handler.
    handled = _names("top", "processed", "acked") | {"notification"}
    assert set(handlers.TABLE) == handled
    assert not _names("top", "not yet") - _names("top", "processed", "acked") & set(handlers.TABLE)


def test_ib_children_are_in_the_doc() -> None:
    children = {r.ib_child() for r in ROWS if r.ib_child() and r.status == "processed"}
    assert set(ib.HANDLERS) == children


def test_call_offers_are_in_the_doc() -> None:
    row = next(r for r in ROWS if r.stanza.startswith("`<call>` offer"))
    assert set(call.OFFER_TAGS) == set(re.findall(r"\w+", row.stanza.split("`")[-1]))


def test_notification_types_are_in_the_doc() -> None:
    processed = _names("notification", "processed")
    acked = _names("notification", "acked")
    assert set(notification.HANDLERS) | set(notification.SELF_ACKED) == processed
    # Types the doc only acks (account_sync has acked children, but is handled).
    assert set(notification.ACKED_ONLY) == acked - processed
