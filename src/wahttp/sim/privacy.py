"""Privacy tokens and AB props on the simulated server, as the real server has them.

Tokens: account A issues a token to account B (`<iq xmlns="privacy" type="set"><tokens><token
jid=B t type="trusted_contact"/>`, or its simulated phone does); the server tells B's linked
devices with `<notification type="privacy_token" from=A sender_lid=A's LID><tokens><token
jid=<the device> t type="trusted_contact">bytes</token>`. While AB prop 10518 is on, a 1:1
message from B to A must carry a `<tctoken>` A issued to B and not yet expired (the 7-day
bucket rule, 4 buckets): without one it is refused with `<ack class="message" error="463">`
and delivered nowhere. A `<tctoken>` on a peer message (category="peer") is refused with 479.

A token is `t` (8 bytes, big-endian) + HMAC-SHA256(secret, "issuer:holder:t")[:24], the secret
derived from the simulator's root key: it is checked without a table, so tokens survive a
restart from a state file.

What makes the first message possible in the sandbox: an account is "trusting" by default:
a message to it from someone it never issued a token to (or whose token expired) is a first
contact and is accepted, and its phone answers it by issuing its token to the sender (the
notification reaches the sender's devices before the message's ack), so the next message
must carry it. That is the real network's behaviour for an unrestricted account (established
chats carry a token; Baileys: 463 "usually means the account is restricted"). An account made
with `trusting=False` (a stranger, or a restricted sender's view of it) refuses every message
without its token with 463 until its phone messages the sender (a phone issues its token to an
account it sends to or hears from, once per 7-day bucket). A newly linked device gets every
token its account holds in the initial history sync its phone sends it, as on the real
network: each holding's conversation (under the issuer's LID) carries `tcToken` and
`tcTokenTimestamp`, and `tcTokenSenderTimestamp` when the account issued its own token back;
the chunk also maps those LIDs to their numbers.

AB props: `<iq xmlns="abt">` gets every prop with `hash` and `refresh` (seconds, settable for
tests); a request carrying the current hash gets the `<props>` without children (unchanged).
Every props query is recorded (`props_served`), so a test can count a client's re-fetches.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import tctoken
from wahttp.wa.crypto import hkdf
from wahttp.wa.jid import S_WHATSAPP_NET, Jid
from wahttp.wa.proto.history_pb2 import HistorySync

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.network import Account, Network
    from wahttp.sim.routing import Router
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)

PRIVACY_TOKEN_PROP = 10518
# What the real network answers today (the props Baileys 7 reads), by config code.
DEFAULT_PROPS: dict[str, str] = {
    "10518": "true",  # privacy_token_sending_on_all_1_on_1_messages
    "9666": "true",  # profile_scraping_privacy_token_in_photo_iq
    "14303": "false",  # lid_trusted_token_issue_to_lid
}
PROPS_REFRESH = 86400  # seconds, the `refresh` attribute of the answer (settable)
PROPS_SERVED_KEPT = 10_000


class PrivacyTokens:
    """The issued tokens (issuer number, holder number) -> t, and the AB props."""

    def __init__(self) -> None:
        self.secret = hashlib.sha256(b"wahttp sim privacy tokens").digest()
        self.issued: dict[tuple[str, str], int] = {}
        self.props: dict[str, str] = dict(DEFAULT_PROPS)
        self.props_refresh = PROPS_REFRESH
        # (number, device id, hash matched: answered without props), per props query (the
        # latest PROPS_SERVED_KEPT).
        self.props_served: deque[tuple[str, int, bool]] = deque(maxlen=PROPS_SERVED_KEPT)
        self.server: SimServer | None = None
        # Counters for tests: refused sends (463/479) and messages that carried a valid token.
        self.refused: list[tuple[str, str, int]] = []
        self.accepted_with_token = 0
        self.first_contacts = 0

    # -- props -----------------------------------------------------------------------------
    def props_hash(self) -> str:
        text = ",".join(f"{k}={v}" for k, v in sorted(self.props.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def enforced(self) -> bool:
        return self.props.get(str(PRIVACY_TOKEN_PROP), "false") in ("true", "1")

    def set_prop(self, code: int | str, value: str | bool | None) -> None:
        if value is None:
            self.props.pop(str(code), None)
        else:
            text = ("true" if value else "false") if isinstance(value, bool) else value
            self.props[str(code)] = text

    # -- tokens ----------------------------------------------------------------------------
    def bind(self, server: SimServer) -> None:
        self.server = server
        self.secret = hkdf(server.keys.root.private, 32, info=b"wahttp sim privacy tokens")

    def make(self, issuer: str, holder: str, t: int) -> bytes:
        mac = hmac.new(self.secret, f"{issuer}:{holder}:{t}".encode(), hashlib.sha256).digest()
        return t.to_bytes(8, "big") + mac[:24]

    def valid(self, issuer: str, holder: str, token: bytes | None, now: int | None = None) -> bool:
        if token is None or len(token) != 32:
            return False
        t = int.from_bytes(token[:8], "big")
        if not hmac.compare_digest(token, self.make(issuer, holder, t)):
            return False
        return not tctoken.is_expired(t, now)

    def token_for(self, issuer: str, holder: str) -> tuple[int, bytes] | None:
        """The unexpired token `issuer` last issued to `holder`, with its t."""
        t = self.issued.get((issuer, holder))
        if t is None or tctoken.is_expired(t):
            return None
        return t, self.make(issuer, holder, t)

    async def issue(
        self, router: Router, issuer: str, holder: str, t: int | None = None
    ) -> bytes | None:
        """Record a token and hand it to the holder's linked devices."""
        if issuer == holder or holder not in router.network.accounts:
            return None
        t = int(time.time()) if t is None else t
        self.issued[(issuer, holder)] = t
        token = self.make(issuer, holder, t)
        await notify(router, issuer, holder, t, token)
        return token

    async def issue_on_contact(self, router: Router, issuer: str, holder: str) -> None:
        """A phone in contact with another account issues its token once per bucket."""
        if tctoken.should_send_new(self.issued.get((issuer, holder))):
            await self.issue(router, issuer, holder)

    def held_by(self, holder: str) -> list[tuple[str, int]]:
        return [
            (i, t) for (i, h), t in self.issued.items() if h == holder and not tctoken.is_expired(t)
        ]

    async def admit(self, router: Router, sender: str, issuer: Account, node: Node) -> str | None:
        """The error a 1:1 message from account `sender` to `issuer` gets, or None."""
        carried = node.child("tctoken")
        if node.attr("category") == "peer":
            return "479" if carried is not None else None
        token = carried.content_bytes() if carried is not None else None
        if self.valid(issuer.number, sender, token):
            self.accepted_with_token += 1
            return None
        if not self.enforced:
            return None
        if issuer.trusting and self.token_for(issuer.number, sender) is None:
            # A first contact: accepted, and answered with the issuer's token.
            self.first_contacts += 1
            await self.issue(router, issuer.number, sender)
            return None
        self.refused.append((sender, issuer.number, 463))
        log.info("refused %s -> %s: 463 (no valid privacy token)", sender, issuer.number)
        return "463"


def token_notification(account: Account, device: Jid, t: int, token: bytes, stanza_id: str) -> Node:
    attrs = {
        "from": str(Jid(account.number, S_WHATSAPP_NET)),
        "sender_lid": str(account.phone.lid),
        "type": "privacy_token",
        "id": stanza_id,
        "t": str(int(time.time())),
    }
    token_attrs = {"jid": str(device), "t": str(t), "type": tctoken.TOKEN_TYPE}
    return Node("notification", attrs, [Node("tokens", {}, [Node("token", token_attrs, token)])])


async def notify(
    router: Router,
    issuer: str,
    holder: str,
    t: int,
    token: bytes,
) -> None:
    """Hand the token to the holder's linked devices (queued for those offline)."""
    network = router.network
    account = network.accounts.get(holder)
    issuer_account = network.accounts.get(issuer)
    if account is None or issuer_account is None:
        return
    for device_id in list(account.devices):
        device = Jid(holder, S_WHATSAPP_NET, device_id)
        stanza_id = f"tc.{issuer}.{t}.{device_id}"
        node = token_notification(issuer_account, device, t, token, stanza_id)
        await router.deliver((holder, device_id), node)


def bootstrap_history(network: Network, number: str) -> HistorySync:
    """The initial bootstrap history sync chunk for a new companion of `number`: one
    conversation per unexpired token the account holds, keyed by the issuer's LID."""
    tokens = network.privacy
    history = HistorySync(syncType=0, chunkOrder=0, progress=100)  # INITIAL_BOOTSTRAP
    for issuer, t in sorted(tokens.held_by(number)):
        issuer_account = network.accounts.get(issuer)
        if issuer_account is None:
            continue
        lid = str(issuer_account.phone.lid)
        chat = history.conversations.add(id=lid)
        chat.tcToken = tokens.make(issuer, number, t)
        chat.tcTokenTimestamp = t
        ours = tokens.issued.get((number, issuer))
        if ours is not None and not tctoken.is_expired(ours):
            chat.tcTokenSenderTimestamp = ours
        history.phoneNumberToLidMappings.add(pnJid=f"{issuer}@{S_WHATSAPP_NET}", lidJid=lid)
    return history


async def on_issue_iq(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    """`<iq xmlns="privacy" type="set"><tokens><token jid t type="trusted_contact"/>`."""
    from wahttp.sim.iq import error, result

    device = conn.device
    assert device is not None
    tokens = node.child("tokens")
    if tokens is None:
        return error(node, 400, "bad-request")
    for child in tokens.children("token"):
        target = child.attr_jid("jid")
        holder = server.network.account_by_user(target.user) if target is not None else None
        if child.attr("type") != tctoken.TOKEN_TYPE or holder is None:
            continue
        t = child.attr("t")
        await server.network.privacy.issue(
            server.router, device.number, holder.number, int(t) if t and t.isdigit() else None
        )
    return result(node)


async def on_props_iq(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    """`<iq xmlns="abt" type="get"><props protocol="1" [hash]>`: every prop, or none when the
    client's hash is the current one (its props are still right)."""
    from wahttp.sim.iq import result

    tokens = server.network.privacy
    current = tokens.props_hash()
    asked = node.child("props")
    unchanged = asked is not None and asked.attr("hash") == current
    device = conn.device
    if device is not None:
        tokens.props_served.append((device.number, device.device_id, unchanged))
    props = [
        Node("prop", {"config_code": code, "config_value": value})
        for code, value in sorted(tokens.props.items())
    ]
    attrs = {"protocol": "1", "hash": current, "refresh": str(tokens.props_refresh)}
    return result(node, [Node("props", attrs, None if unchanged else props)])
