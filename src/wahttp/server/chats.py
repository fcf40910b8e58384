"""A session's chat list (GET /sessions/{id}/chats): its message records joined with app state.

Chats are the distinct `chat`s of the session's `messages` rows, newest last message first. The
list comes from one query over the `messages_chat_time` index (migration 010): a recursive skip
scan finds each chat with one index probe (a GROUP BY would read every message of the session),
each chat's last message is its last index entry, and only the page's chats are looked at
further. Names and flags come from the app state the phone synced (`app-state-chat-<jid>`
records, under the chat's JID or its PN/LID twin), else from the push name of the chat's newest
received message (found from the index alone, then one row read).

Unread: received messages newer than the chat's read marker, which is the later of the newest
received message this session sent a read receipt for (`POST .../messages/{id}/read`) and what
the phone's app state says (`readAt` of a markChatAsRead, `deletedAt` of a deleteChat; unix
ms). Timestamps are the service's (when a message was recorded), the app state's the phone's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wahttp.server.db import Database
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.client import appstate
from wahttp.wa.jid import LID, S_WHATSAPP_NET

PAGE_SQL = """
WITH RECURSIVE chats(chat) AS (
    (SELECT chat FROM messages WHERE session_id = $1 ORDER BY chat LIMIT 1)
  UNION ALL
    SELECT (SELECT m.chat FROM messages m WHERE m.session_id = $1 AND m.chat > c.chat
            ORDER BY m.chat LIMIT 1)
    FROM chats c WHERE c.chat IS NOT NULL
), page AS (
    SELECT c.chat, last.at
    FROM chats c
    CROSS JOIN LATERAL (
        SELECT m.created_at AS at FROM messages m
        WHERE m.session_id = $1 AND m.chat = c.chat ORDER BY m.created_at DESC LIMIT 1
    ) last
    WHERE c.chat IS NOT NULL
    ORDER BY last.at DESC, c.chat
    LIMIT $2 OFFSET $3
), marked AS (
    SELECT p.chat, p.at,
        (SELECT max(m.created_at) FROM messages m
         WHERE m.session_id = $1 AND m.chat = p.chat AND NOT m.from_me
           AND m.read_at IS NOT NULL) AS read_upto,
        (SELECT m.push_name FROM messages m
         WHERE m.session_id = $1 AND m.chat = p.chat AND NOT m.from_me
           AND m.created_at = (SELECT max(i.created_at) FROM messages i
                               WHERE i.session_id = $1 AND i.chat = p.chat AND NOT i.from_me)
         LIMIT 1) AS push_name
    FROM page p
)
SELECT k.chat, k.at, k.read_upto, k.push_name,
    (SELECT count(*) FROM messages m
     WHERE m.session_id = $1 AND m.chat = k.chat AND NOT m.from_me
       AND m.created_at > COALESCE(k.read_upto, '-infinity')) AS unread
FROM marked k
ORDER BY k.at DESC, k.chat
"""

# Unread counts again for the chats whose app-state marker is later than their read receipts.
RECOUNT_SQL = """
SELECT p.chat,
    (SELECT count(*) FROM messages m
     WHERE m.session_id = $1 AND m.chat = p.chat AND NOT m.from_me
       AND m.created_at > p.marker) AS unread
FROM unnest($2::text[], $3::timestamptz[]) AS p(chat, marker)
"""


@dataclass(frozen=True, slots=True)
class ChatEntry:
    jid: str
    name: str | None
    push_name: str | None
    last_message_at: int  # unix s
    unread: int
    archived: bool
    pinned: bool
    muted_until: int | None
    marked_unread: bool


async def list_chats(
    db: Database, store: AuthStore, session_id: str, *, limit: int, offset: int = 0
) -> list[ChatEntry]:
    async with db.acquire() as conn:
        rows = await conn.fetch(PAGE_SQL, session_id, limit, offset)
    if not rows:
        return []
    jids = [str(r["chat"]) for r in rows]
    records = await _app_state(store, jids)
    recount: dict[str, datetime] = {}
    for r in rows:
        marker = _app_marker(records.get(r["chat"], {}))
        if marker is not None and (r["read_upto"] is None or marker > r["read_upto"]):
            recount[r["chat"]] = marker
    unread = {str(r["chat"]): int(r["unread"]) for r in rows}
    if recount:
        async with db.acquire() as conn:
            again = await conn.fetch(RECOUNT_SQL, session_id, list(recount), list(recount.values()))
        unread.update({str(r["chat"]): int(r["unread"]) for r in again})
    out = []
    for r in rows:
        jid = str(r["chat"])
        rec = records.get(jid, {})
        name = rec.get("name") if isinstance(rec.get("name"), str) else None
        muted = rec.get("mutedUntil")
        out.append(
            ChatEntry(
                jid=jid,
                name=name or r["push_name"],
                push_name=r["push_name"],
                last_message_at=int(r["at"].timestamp()),
                unread=unread[jid],
                archived=bool(rec.get("archived")),
                pinned=bool(rec.get("pinned")),
                muted_until=muted if isinstance(muted, int) and muted else None,
                marked_unread=rec.get("read") is False,
            )
        )
    return out


async def _app_state(store: AuthStore, jids: list[str]) -> dict[str, dict[str, Any]]:
    """Each chat's app-state record: its own, over that of its PN/LID twin (one read each of
    the mappings and the records)."""
    twins_keys: dict[str, str] = {}
    for jid in jids:
        user, _, server = jid.partition("@")
        if server == S_WHATSAPP_NET:
            twins_keys[jid] = user
        elif server == LID:
            twins_keys[jid] = f"{user}_reverse"
    mapped = await store.get("lid-mapping", sorted(set(twins_keys.values()))) if twins_keys else {}
    twins: dict[str, str] = {}
    for jid, key in twins_keys.items():
        other = mapped.get(key)
        if isinstance(other, str) and other:
            server = LID if key == jid.partition("@")[0] else S_WHATSAPP_NET
            twins[jid] = f"{other}@{server}"
    found = await store.get(appstate.CHAT_CATEGORY, sorted({*jids, *twins.values()}))
    out: dict[str, dict[str, Any]] = {}
    for jid in jids:
        twin = found.get(twins.get(jid, ""))
        own = found.get(jid)
        merged = dict(twin) if isinstance(twin, dict) else {}
        merged.update(own if isinstance(own, dict) else {})
        out[jid] = merged
    return out


def _app_marker(record: dict[str, Any]) -> datetime | None:
    """The phone's read marker of a chat: the later of markChatAsRead and deleteChat (unix ms)."""
    stamps = [v for v in (record.get("readAt"), record.get("deletedAt")) if isinstance(v, int)]
    stamps = [v for v in stamps if v > 0]
    return datetime.fromtimestamp(max(stamps) / 1000, UTC) if stamps else None
