"""Privacy tokens ("tctoken", trusted-contact tokens) for 1:1 messages.

A contact lets us message them by issuing us a token; the server hands it to us in
`<notification type="privacy_token"><tokens><token jid t type="trusted_contact">bytes</token>`.
The real server refuses a 1:1 message without one with `<ack error="463">` when AB prop 10518
is on. We issue our own token to a contact after messaging them
(`<iq xmlns="privacy" type="set"><tokens><token jid t type="trusted_contact"/>`), once per
7-day bucket. The rules follow Baileys 7 (`Utils/tc-token-utils.js`, `Socket/messages-send.js`,
`Socket/messages-recv.js`) and whatsmeow (`tctoken.go`, `send.go`, `notification.go`).

Storage is Baileys' exactly, so an auth folder moves between the two: category `tctoken`, key
the contact's JID without device (its LID when the mapping is known, e.g. `123@lid`), value
`{"token": <bytes>, "timestamp": "<their t>", "senderTimestamp": <our last issue, seconds>}`
(each member only when known; `token` is empty bytes when only our issue time is worth
keeping), plus the `__index` key: `{"token": <JSON array of the stored keys, as bytes>}`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wahttp.wa.binary import Node
from wahttp.wa.client import abprops
from wahttp.wa.jid import C_US, LID, S_WHATSAPP_NET, Jid

if TYPE_CHECKING:
    from wahttp.wa.auth.store import AuthStore
    from wahttp.wa.client.client import Client
    from wahttp.wa.proto.history_pb2 import HistorySync

CATEGORY = "tctoken"
INDEX_KEY = "__index"
TOKEN_TYPE = "trusted_contact"
BUCKET_SECONDS = 604800  # 7 days (AB prop tctoken_duration)
NUM_BUCKETS = 4  # a rolling window of about 28 days (AB prop tctoken_num_buckets)
# Bots by phone number, as WA Web's Wid.isBot (Baileys' BOT_PHONE_REGEX); PSA is user "0".
_BOT_NUMBER = re.compile(r"^1313555\d{4}$|^131655500\d{2}$")
_USER_SERVERS = frozenset({S_WHATSAPP_NET, LID, "hosted", "hosted.lid", "c.us"})


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


def cutoff(now: int | None = None) -> int:
    """The oldest timestamp still valid: the start of the oldest of the 4 kept buckets."""
    current = _now(now) // BUCKET_SECONDS
    return (current - (NUM_BUCKETS - 1)) * BUCKET_SECONDS


def _seconds(value: int | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = value.strip()
    # JavaScript's parseInt: leading digits count, anything else is NaN.
    digits = re.match(r"^-?\d+", text)
    return int(digits.group()) if digits else None


def is_expired(timestamp: int | str | None, now: int | None = None) -> bool:
    ts = _seconds(timestamp)
    return ts is None or ts < cutoff(now)


def should_send_new(sender_timestamp: int | None, now: int | None = None) -> bool:
    """Issue our token again only when the current bucket is newer than the last issue's."""
    if sender_timestamp is None:
        return True
    return _now(now) // BUCKET_SECONDS > sender_timestamp // BUCKET_SECONDS


def is_regular_user(jid: Jid) -> bool:
    """A person (not PSA, not a bot, not Meta AI), as WA Web's Wid.isRegularUser."""
    if not jid.user or jid.user == "0" or _BOT_NUMBER.match(jid.user):
        return False
    return jid.server in _USER_SERVERS


@dataclass
class TcToken:
    token: bytes = b""
    timestamp: str | None = None  # the issuer's t, as the notification carried it
    sender_timestamp: int | None = None  # when we last issued ours to this contact

    @classmethod
    def from_json(cls, value: Any) -> TcToken | None:
        if not isinstance(value, dict):
            return None
        token = value.get("token")
        ts = value.get("timestamp")
        sender = value.get("senderTimestamp")
        return cls(
            token=token if isinstance(token, bytes) else b"",
            timestamp=str(ts) if isinstance(ts, (str, int)) and ts != "" else None,
            sender_timestamp=_seconds(sender) if isinstance(sender, (str, int)) else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        if self.sender_timestamp is not None:
            out["senderTimestamp"] = self.sender_timestamp
        return out

    def usable(self, now: int | None = None) -> bool:
        if not self.token or self.timestamp is None:
            return False
        return not is_expired(self.timestamp, now)


# -- storage ----------------------------------------------------------------------------------
async def storage_key(client: Client, jid: Jid) -> str:
    """Where a contact's token lives: its LID (without device) when known, else its PN."""
    jid = jid.to_non_ad()
    if jid.server == S_WHATSAPP_NET:
        lid_user = await client.signal.lid_for_pn(jid.user)
        if lid_user is not None:
            return str(Jid(lid_user, LID))
    return str(jid)


async def load(store: AuthStore, key: str) -> TcToken | None:
    found = await store.get(CATEGORY, [key])
    return TcToken.from_json(found.get(key))


async def read_index(store: AuthStore) -> list[str]:
    found = await store.get(CATEGORY, [INDEX_KEY])
    entry = found.get(INDEX_KEY)
    raw = entry.get("token") if isinstance(entry, dict) else None
    if not isinstance(raw, bytes) or not raw:
        return []
    try:
        parsed = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return []
    if not isinstance(parsed, list):
        return []
    return [j for j in parsed if isinstance(j, str) and j and j != INDEX_KEY]


async def index_write(store: AuthStore, added: list[str]) -> dict[str, Any]:
    """The `__index` value listing what is stored already plus `added` (order kept)."""
    merged = list(dict.fromkeys([*await read_index(store), *(a for a in added if a != INDEX_KEY)]))
    text = json.dumps(merged, separators=(",", ":"))
    return {INDEX_KEY: {"token": text.encode()}}


async def store_tokens(
    client: Client, node: Node, fallback_key: str | None, now: int | None = None
) -> list[str]:
    """Keep the trusted-contact tokens of a `<tokens>` child (a notification or an iq result);
    returns the keys written. An older token never replaces a newer one."""
    tokens = node.child("tokens")
    if tokens is None:
        return []
    written: list[str] = []
    for child in tokens.children("token"):
        content = child.content_bytes()
        if child.attr("type") != TOKEN_TYPE or content is None:
            continue
        # In a notification `jid` names our own device, never the issuer: the caller's key wins.
        key = fallback_key
        if key is None:
            own = child.attr_jid("jid")
            if own is None:
                continue
            key = await storage_key(client, own)
        if not is_regular_user(Jid.parse(key)):
            continue
        incoming = _seconds(child.attr("t")) or 0
        if not incoming:
            continue  # a token without a time would be expired at once
        existing = await load(client.store, key)
        existing_ts = _seconds(existing.timestamp) if existing is not None else None
        if existing_ts and existing_ts > incoming:
            continue
        entry = existing or TcToken()
        entry.token = content
        entry.timestamp = child.attr("t")
        changes = {key: entry.to_json(), **await index_write(client.store, [key])}
        await client.store.set({CATEGORY: changes})
        written.append(key)
    return written


# -- incoming ---------------------------------------------------------------------------------
async def on_notification(client: Client, node: Node) -> None:
    """`<notification type="privacy_token" from=issuer [sender_lid]>`: store what it carries
    under the issuer (its LID: sender_lid, else the PN's known LID, else the PN)."""
    sender = node.attr_jid("from")
    if sender is None:
        return
    sender_lid = node.attr_jid("sender_lid")
    if sender_lid is not None and sender_lid.is_lid():
        key = str(sender_lid.to_non_ad())
    else:
        key = await storage_key(client, sender)
    stored = await store_tokens(client, node, key)
    client.log.debug("privacy token notification: %d stored", len(stored))


# -- outgoing ---------------------------------------------------------------------------------
def is_one_to_one(client: Client, chat: Jid) -> bool:
    """A chat a token goes with: a person other than ourselves (never our own devices: a
    token on a peer message is refused with 479), not a group, broadcast or newsletter."""
    me = client.creds.me
    own = {client.me.user}
    if me is not None and me.lid:
        own.add(Jid.parse(me.lid).user)
    return chat.is_user() and chat.user not in own


@dataclass
class SendTokens:
    """What a 1:1 send needs: the storage key, the entry found (if any), the token to attach."""

    key: str
    entry: TcToken | None
    token: bytes | None


async def for_send(client: Client, chat: Jid, now: int | None = None) -> SendTokens:
    """The token to attach to a message to `chat`; an expired one is dropped from the store
    (keeping our issue time, so the once-per-bucket issuing survives the cleanup)."""
    key = await storage_key(client, chat)
    entry = await _load_dropping_expired(client, key, now)
    token = entry.token if entry is not None and entry.usable(now) else None
    if token is not None and not client.ab_props.enabled(abprops.PRIVACY_TOKEN_ON_1_TO_1):
        token = None
    return SendTokens(key, entry, token)


async def _load_dropping_expired(client: Client, key: str, now: int | None) -> TcToken | None:
    """The stored entry, with an unusable token dropped from the store first (Baileys keeps
    `senderTimestamp` so that issuing once per bucket survives the cleanup)."""
    entry = await load(client.store, key)
    if entry is not None and entry.token and not entry.usable(now):
        cleared = TcToken(sender_timestamp=entry.sender_timestamp)
        value = cleared.to_json() if entry.sender_timestamp is not None else None
        await client.store.set({CATEGORY: {key: value}})
        entry = cleared if value is not None else None
    return entry


def token_node(token: bytes) -> Node:
    """The `<tctoken>` child of a message stanza: no attributes (Baileys 7 and whatsmeow)."""
    return Node("tctoken", {}, token)


async def issuance_jid(client: Client, chat: Jid) -> Jid:
    """Whom the token is issued to: the PN, or the LID when AB prop 14303 says so."""
    chat = chat.to_non_ad()
    if client.ab_props.enabled(abprops.LID_TRUSTED_TOKEN_ISSUE_TO_LID):
        if chat.is_lid():
            return chat
        lid_user = await client.signal.lid_for_pn(chat.user)
        return Jid(lid_user, LID) if lid_user else chat
    if chat.is_lid():
        pn_user = await client.signal.pn_for_lid(chat.user)
        return Jid(pn_user, S_WHATSAPP_NET) if pn_user else chat
    return chat


def issue_query(jids: list[Jid], t: int) -> Node:
    tokens = [
        Node("token", {"jid": str(j.to_non_ad()), "t": str(t), "type": TOKEN_TYPE}) for j in jids
    ]
    return Node(
        "iq",
        {"to": S_WHATSAPP_NET, "type": "set", "xmlns": "privacy"},
        [Node("tokens", {}, tokens)],
    )


async def issue(client: Client, chat: Jid, key: str, *, record_sender: bool = True) -> None:
    """Issue our token to a contact; keep tokens the answer carries and (unless told not to)
    our issue time as `senderTimestamp`."""
    t = int(time.time())
    result = await client.query(issue_query([await issuance_jid(client, chat)], t))
    await store_tokens(client, result, key)
    if record_sender:
        entry = await load(client.store, key) or TcToken()
        entry.sender_timestamp = t
        changes = {key: entry.to_json(), **await index_write(client.store, [key])}
        await client.store.set({CATEGORY: changes})


def after_send(client: Client, chat: Jid, tokens: SendTokens, *, recovering: bool) -> None:
    """After a 1:1 send: issue our token in the background when this bucket has none yet,
    or at once after a 463 (Baileys' recovery: the contact then holds one of ours; the
    refused message is not sent again, which would count as another reach-out)."""
    sender_ts = tokens.entry.sender_timestamp if tokens.entry is not None else None
    if not recovering and not should_send_new(sender_ts):
        return
    if not is_regular_user(chat) or tokens.key in client.tc_issuing:
        return
    client.tc_issuing.add(tokens.key)

    async def job() -> None:
        try:
            await issue(client, chat, tokens.key, record_sender=True)
        except Exception as exc:  # a failed issue only costs the next try
            client.log.debug("privacy token not issued (%s)", type(exc).__name__)
        finally:
            client.tc_issuing.discard(tokens.key)

    client.spawn(job(), "wa-tctoken")


async def reissue_after_identity_change(client: Client, contact: Jid) -> bool:
    """A contact's identity changed (a new phone): issue our token to it again, with the same
    timestamp as before, if we had issued one that is not yet expired (Baileys 7
    `reissueTcTokenAfterIdentityChange`, after WA Web's SendTcTokenWhenDeviceIdentityChange).
    Runs in the background; True when an issue was started."""
    if not is_regular_user(contact):
        return False
    key = await storage_key(client, contact)
    entry = await load(client.store, key)
    sender_ts = entry.sender_timestamp if entry is not None else None
    if sender_ts is None or is_expired(sender_ts) or key in client.tc_issuing:
        return False
    client.tc_issuing.add(key)

    async def job() -> None:
        try:
            target = await issuance_jid(client, contact)
            result = await client.query(issue_query([target], sender_ts))
            await store_tokens(client, result, key)
        except Exception as exc:  # a failed re-issue costs nothing but the token
            client.log.debug("privacy token not re-issued (%s)", type(exc).__name__)
        finally:
            client.tc_issuing.discard(key)

    client.spawn(job(), "wa-tctoken-reissue")
    return True


# -- tokens on other stanzas ------------------------------------------------------------------
def stanza_token_node(entry: TcToken) -> Node:
    """The `<tctoken t=…>` child of a profile-picture iq or a presence subscribe: unlike a
    message's, it carries the issuer's timestamp (Baileys 7 `buildTcTokenFromJid`)."""
    return Node("tctoken", {"t": str(entry.timestamp)}, entry.token)


async def stanza_tokens(client: Client, jid: Jid, now: int | None = None) -> list[Node]:
    """The token children for a stanza about the contact `jid`: one `<tctoken t>` when we hold
    a usable token from it, else none (an expired one is dropped from the store, as on send).
    Only a person's JID has one; groups and newsletters never do."""
    jid = jid.to_non_ad()
    if jid.server not in (S_WHATSAPP_NET, LID):
        return []
    entry = await _load_dropping_expired(client, await storage_key(client, jid), now)
    return [stanza_token_node(entry)] if entry is not None and entry.usable(now) else []


def _is_self(client: Client, jid: Jid) -> bool:
    me = client.creds.me
    if me is None:
        return False
    own = {Jid.parse(j).to_non_ad() for j in (me.id, me.lid) if j}
    return jid.to_non_ad() in own


async def picture_query(
    client: Client, jid: Jid, kind: str = "preview", now: int | None = None
) -> Node:
    """`<iq xmlns="w:profile:picture" target type="get"><picture type query="url">[<tctoken>]`.
    The token goes in while AB prop 9666 (profile_scraping_privacy_token_in_photo_iq) is on, for
    a person other than ourselves: WA Web never sends one for its own picture, and the server
    does not answer one that does (Baileys 7 `profilePictureUrl`)."""
    target = jid.to_non_ad()
    children: list[Node] = []
    if client.ab_props.enabled(abprops.PROFILE_PIC_PRIVACY_TOKEN) and not _is_self(client, target):
        children = await stanza_tokens(client, target, now)
    picture = Node("picture", {"type": kind, "query": "url"}, children or None)
    attrs = {"target": str(target), "to": S_WHATSAPP_NET, "type": "get"}
    attrs["xmlns"] = "w:profile:picture"
    return Node("iq", attrs, [picture])


async def presence_subscribe(client: Client, jid: Jid, now: int | None = None) -> Node:
    """`<presence type="subscribe" to id>[<tctoken t>]`: a person's token rides along whatever
    the AB props say (Baileys 7 `presenceSubscribe` gates it on nothing but the JID kind)."""
    tokens = await stanza_tokens(client, jid, now)
    attrs = {"to": str(jid), "id": client.new_id(), "type": "subscribe"}
    return Node("presence", attrs, tokens or None)


# -- pruning ----------------------------------------------------------------------------------
PRUNE_EVERY = 86400.0  # seconds: at most once a day (WA Web's CLEAN_TC_TOKENS, Baileys 7)
PRUNE_RETRY = 3600.0  # after a failed run (the store was unreachable)


@dataclass
class PruneResult:
    removed: list[str]  # entries deleted: nothing left worth keeping
    cleared: list[str]  # the contact's token dropped, our issue time kept
    kept: list[str]  # the index after the run (in its order)
    written: bool  # False when nothing changed (and nothing was written)


async def prune(store: AuthStore, now: int | None = None) -> PruneResult:
    """Drop what the 4-bucket window has left behind, for every key the `__index` lists
    (Baileys 7 `pruneExpiredTcTokens`): an entry with neither a live token nor a live issue
    time of ours is deleted; one whose token expired but whose issue time lives on keeps only
    `senderTimestamp`; a listed key with no entry leaves the index. One atomic write, the
    index included, and only when something changed."""
    keys = await read_index(store)
    removed: list[str] = []
    cleared: list[str] = []
    kept: list[str] = []
    if not keys:
        return PruneResult(removed, cleared, kept, written=False)
    found = await store.get(CATEGORY, keys)
    writes: dict[str, Any] = {}
    mutated = 0
    for key in keys:
        entry = TcToken.from_json(found.get(key))
        if entry is None:
            mutated += 1  # listed, but nothing stored
            continue
        token_expired = bool(entry.token) and is_expired(entry.timestamp, now)
        keep_token = bool(entry.token) and not token_expired
        sender = entry.sender_timestamp
        keep_sender = sender is not None and not is_expired(sender, now)
        if not keep_token and not keep_sender:
            writes[key] = None
            removed.append(key)
            mutated += 1
        elif token_expired and keep_sender:
            writes[key] = TcToken(sender_timestamp=sender).to_json()
            cleared.append(key)
            kept.append(key)
            mutated += 1
        else:
            kept.append(key)
    if not mutated:
        return PruneResult(removed, cleared, kept, written=False)
    index = json.dumps(kept, separators=(",", ":")).encode()
    await store.set({CATEGORY: {**writes, INDEX_KEY: {"token": index}}})
    return PruneResult(removed, cleared, kept, written=True)


async def prune_daily(
    client: Client, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """The connection's pruning job: once when it opens unless this client pruned in the last
    24 hours (a reconnect does not prune again), then every 24 hours while it stays open."""
    while client.connected:
        last = client.tc_pruned_at
        wait = 0.0 if last is None else last + PRUNE_EVERY - time.monotonic()
        if wait > 0:
            await sleep(wait)
            continue
        try:
            result = await prune(client.store)
        except Exception as exc:  # a failed run is tried again later, never fatal
            client.log.warning("privacy tokens not pruned (%s)", type(exc).__name__)
            client.tc_pruned_at = time.monotonic() - PRUNE_EVERY + PRUNE_RETRY
            continue
        client.tc_pruned_at = time.monotonic()
        if result.written:
            client.log.debug(
                "pruned privacy tokens: %d removed, %d cleared, %d kept",
                len(result.removed),
                len(result.cleared),
                len(result.kept),
            )


def start_pruning(client: Client) -> None:
    client.spawn(prune_daily(client), "wa-tctoken-prune")


# -- history sync -----------------------------------------------------------------------------
@dataclass
class HistoryToken:
    """A privacy token a history sync conversation carries (Conversation fields 21, 22, 28)."""

    jid: Jid  # the conversation's JID, without device
    token: bytes
    timestamp: int  # the issuer's t
    sender_timestamp: int | None  # when we last issued ours to this contact


def history_tokens(history: HistorySync) -> list[HistoryToken]:
    """The tokens of a decoded history sync chunk: conversations with a non-empty `tcToken` and
    a non-zero `tcTokenTimestamp` (Baileys 7 `storeTcTokensFromHistorySync`), of people only."""
    out: list[HistoryToken] = []
    for chat in history.conversations:
        if not chat.tcToken or not chat.tcTokenTimestamp:
            continue
        try:
            jid = Jid.parse(chat.id).to_non_ad()
        except ValueError:
            continue
        if jid.server == C_US:
            jid = Jid(jid.user, S_WHATSAPP_NET)
        if not is_regular_user(jid):
            continue
        sender = chat.tcTokenSenderTimestamp if chat.HasField("tcTokenSenderTimestamp") else None
        out.append(HistoryToken(jid, chat.tcToken, chat.tcTokenTimestamp, sender or None))
    return out


async def store_history_tokens(client: Client, history: HistorySync) -> list[str]:
    """Keep the tokens of a history sync chunk under their storage keys, with the index, in one
    write. A stored token as new or newer wins (Baileys compares with >= here)."""
    candidates = [(await storage_key(client, t.jid), t) for t in history_tokens(history)]
    if not candidates:
        return []
    existing = await client.store.get(CATEGORY, [key for key, _ in candidates])
    entries: dict[str, Any] = {}
    for key, found in candidates:
        entry = TcToken.from_json(existing.get(key)) or TcToken()
        current = _seconds(entry.timestamp) or 0
        if current > 0 and current >= found.timestamp:
            continue
        entry.token = found.token
        entry.timestamp = str(found.timestamp)
        if found.sender_timestamp is not None:
            entry.sender_timestamp = found.sender_timestamp
        entries[key] = entry.to_json()
    if entries:
        changes = {**entries, **await index_write(client.store, list(entries))}
        await client.store.set({CATEGORY: changes})
    return list(entries)
