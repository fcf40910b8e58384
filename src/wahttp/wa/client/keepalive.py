"""Keepalive: ping the server on an interval and declare the link dead when it goes silent."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.errors import WAError
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

CONNECTION_LOST = 408


def start(client: Client) -> None:
    client.spawn(_loop(client), "wa-keepalive")


async def _loop(client: Client) -> None:
    interval = client.config.keepalive_interval
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        silent_for = loop.time() - client.last_received
        if silent_for > interval + client.config.keepalive_grace:
            await client.close(CONNECTION_LOST, "connection lost: no data from the server")
            return
        ping = Node("iq", {"to": S_WHATSAPP_NET, "type": "get", "xmlns": "w:p"}, [Node("ping", {})])
        try:
            await client.query(ping, timeout=interval)
        except (WAError, TimeoutError):
            client.log.debug("keepalive ping unanswered")
