"""The chat list's app-state side (server/chats.py): records under a chat's PN/LID twin, the
phone's read marker, and the markChatAsRead time the client keeps for it."""

from __future__ import annotations

from datetime import UTC, datetime

from wahttp.server.chats import _app_marker, _app_state
from wahttp.wa.appstate import Mutation
from wahttp.wa.auth import MemoryAuthStore
from wahttp.wa.client import appstate
from wahttp.wa.proto import appstate_pb2 as pb

PN, LID = "15550001111@s.whatsapp.net", "99990001111@lid"


async def test_a_chat_gets_its_twins_record_under_its_own() -> None:
    store = MemoryAuthStore()
    await store.set(
        {
            "lid-mapping": {"15550001111": "99990001111", "99990001111_reverse": "15550001111"},
            appstate.CHAT_CATEGORY: {
                PN: {"name": "Ada L", "archived": True},
                LID: {"archived": False},
            },
        }
    )
    found = await _app_state(store, [LID, PN, "15550002222@s.whatsapp.net"])
    assert found[LID] == {"name": "Ada L", "archived": False}  # its own flag wins
    assert found[PN] == {"name": "Ada L", "archived": True}  # and here the PN record's
    assert found["15550002222@s.whatsapp.net"] == {}


def test_the_read_marker_is_the_later_of_read_and_deleted() -> None:
    assert _app_marker({}) is None
    assert _app_marker({"readAt": 0, "deletedAt": None}) is None
    assert _app_marker({"readAt": 1_700_000_000_500, "deletedAt": 1_600_000_000_000}) == (
        datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    )


def _read(read: bool, timestamp: int = 0, last: int = 0) -> Mutation:
    value = pb.SyncActionValue(timestamp=timestamp)
    value.markChatAsReadAction.read = read
    if last:
        value.markChatAsReadAction.messageRange.lastMessageTimestamp = last
    return Mutation("set", ["markChatAsRead", PN], value, 3)


def test_mark_chat_as_read_keeps_when() -> None:
    record: dict[str, object] = {}
    appstate.apply_mutation(record, _read(True, timestamp=1_700_000_000_123))
    assert record == {"read": True, "readAt": 1_700_000_000_123}
    appstate.apply_mutation(record, _read(False, timestamp=1_700_000_100_000))
    assert record == {"read": False, "readAt": 1_700_000_000_123}  # marked unread: kept
    fresh: dict[str, object] = {}
    appstate.apply_mutation(fresh, _read(True, last=1_700_000_000))  # only the message range
    assert fresh == {"read": True, "readAt": 1_700_000_000_999}
