"""Keepalive: ping the server on an interval; a link silent past the grace period is dead.

A dead link is noticed within `keepalive_interval + keepalive_grace` seconds of going silent,
so a session is never reported open for longer than that on a dead socket.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.close import CloseCode
from wahttp.wa.errors import WAError
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


def start(client: Client) -> None:
    client.spawn(_loop(client), "wa-keepalive")


async def _loop(client: Client) -> None:
    interval = client.config.keepalive_interval
    grace = client.config.keepalive_grace
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        ping = Node("iq", {"to": S_WHATSAPP_NET, "type": "get", "xmlns": "w:p"}, [Node("ping", {})])
        try:
            await client.query(ping, timeout=grace)
        except TimeoutError:
            # Unanswered; other frames arriving meanwhile still prove the link alive.
            if loop.time() - client.last_received > grace:
                await client.close(
                    CloseCode.CONNECTION_LOST, "connection lost: keepalive unanswered"
                )
                return
        except WAError:
            return  # the connection is closing anyway
