"""Offline delivery after a login, as WhatsApp's server does it: preview, batches, end mark.

What a client finds waiting (stanzas sent before and not acked, then the queue) is announced
with `<ib><offline_preview count message notification receipt call appdata/></ib>`; the
client asks for it with `<ib><offline_batch count="N"/></ib>` (Baileys and WA Web ask for 100
once, in answer to the preview; wahttp asks again when a batch is through), and the server
sends the next N stanzas, each carrying `offline="<its position in the backlog>"` (Baileys
`processNode` and whatsmeow read only that the attribute is there: such a stanza is from the
backlog, a call in it no longer rings), then waits for the next `offline_batch`. After the
last one comes `<ib><offline count="<total>"/></ib>` (Baileys: `receivedPendingNotifications`,
whatsmeow: `OfflineSyncCompleted`); with nothing waiting there is no preview, only that mark.

Stanzas that arrive while the backlog drains go out at once, without the attribute. A client
that never asks (whatsmeow does not answer the preview) is not left waiting forever: after
`SimServer.offline_batch_wait` seconds without a request the rest goes out in one go, as a
lenient server would. Every backlog stanza is held as pending before the first is sent, so a
stream that drops halfway gets all the unacked ones again at its next login.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection

log = logging.getLogger(__name__)
OFFLINE_BATCH_WAIT = 5.0  # seconds without <offline_batch> before the rest goes out anyway
PREVIEW_KINDS = ("message", "notification", "receipt", "call")


@dataclass
class OfflineStats:
    """What the offline deliveries of a simulator did (shown in /stats)."""

    batches_asked: int = 0  # <offline_batch> requests clients sent
    delivered: int = 0  # backlog stanzas sent with the offline attribute
    completed: int = 0  # <ib><offline count> marks sent
    lenient: int = 0  # times the server went on without being asked


def preview(backlog: list[Node]) -> Node:
    kinds = Counter(stanza.tag for stanza in backlog)
    attrs = {"count": str(len(backlog))} | {kind: str(kinds[kind]) for kind in PREVIEW_KINDS}
    attrs["appdata"] = "0"
    return Node("ib", {"from": S_WHATSAPP_NET}, [Node("offline_preview", attrs)])


def marked(stanza: Node, position: int) -> Node:
    """A copy of a backlog stanza as it goes out: with `offline`, the stored one without."""
    return Node(stanza.tag, {**stanza.attrs, "offline": str(position)}, stanza.content)


@dataclass
class OfflineDelivery:
    """One login's backlog, sent in the batches the client asks for."""

    conn: ServerConnection
    backlog: list[Node]
    wait: float = OFFLINE_BATCH_WAIT
    stats: OfflineStats = field(default_factory=OfflineStats)
    sent: int = 0
    credit: int = 0  # stanzas asked for and not yet sent
    finished: bool = False
    _asked: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def ask(self, batch: Node) -> None:
        """The client's `<offline_batch count>`; a count that is no positive number is ignored."""
        self.stats.batches_asked += 1
        try:
            count = int(batch.attr("count") or "")
        except ValueError:
            return
        if count > 0 and not self.finished:
            self.credit += count
            self._asked.set()

    async def run(self) -> None:
        total = len(self.backlog)
        if total:
            await self.conn.send_node(preview(self.backlog))
        while self.sent < total:
            if self.credit <= 0:
                self._asked.clear()
                try:
                    await asyncio.wait_for(self._asked.wait(), self.wait)
                except TimeoutError:
                    log.info("conn %d: no offline_batch asked, sending the rest", self.conn.conn_id)
                    self.stats.lenient += 1
                    self.credit = total - self.sent
            take = min(self.credit, total - self.sent)
            for stanza in self.backlog[self.sent : self.sent + take]:
                self.sent += 1
                self.credit -= 1
                await self.conn.send_node(marked(stanza, self.sent))
                self.stats.delivered += 1
        self.finished = True
        done = Node("offline", {"count": str(total)})
        await self.conn.send_node(Node("ib", {"from": S_WHATSAPP_NET}, [done]))
        self.stats.completed += 1
