"""AB props: the server's feature switches (`<iq xmlns="abt" type="get"><props protocol="1">`).

Fetched after the connection opens (Baileys 7 does it among its init queries on
`connection: open`), then again every `refresh` seconds while it stays open (the answer's
attribute; WA Web re-fetches on it, Baileys 7 never does). The answer is
`<props protocol="1" hash=… [refresh=…]>` with `<prop config_code=… config_value=…/>` children
(some servers name a prop by `name`/`value`). The hash goes back in the next request, so an
unchanged set can be answered without props, and is kept in the creds (`lastPropHash`, as
Baileys keeps it); the props themselves live in memory only, as in Baileys: an answer without
props keeps what we had, and a prop never fetched reads as its default. Unlike Baileys, a
client that has no props in memory yet (a fresh process) sends no hash: a server answering a
known hash without props would otherwise leave it on the defaults until the set changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.errors import ConnectionClosed, IQError, WAError
from wahttp.wa.jid import S_WHATSAPP_NET

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

# The codes Baileys 7 reads (Socket/chats.js fetchProps), with the names WA Web gives them.
PRIVACY_TOKEN_ON_1_TO_1 = 10518  # privacy_token_sending_on_all_1_on_1_messages
PROFILE_PIC_PRIVACY_TOKEN = 9666  # profile_scraping_privacy_token_in_photo_iq
LID_TRUSTED_TOKEN_ISSUE_TO_LID = 14303  # lid_trusted_token_issue_to_lid
NAMES: dict[int, str] = {
    PRIVACY_TOKEN_ON_1_TO_1: "privacy_token_sending_on_all_1_on_1_messages",
    PROFILE_PIC_PRIVACY_TOKEN: "profile_scraping_privacy_token_in_photo_iq",
    LID_TRUSTED_TOKEN_ISSUE_TO_LID: "lid_trusted_token_issue_to_lid",
}
DEFAULT_REFRESH = 86400  # seconds between fetches when an answer names no interval
MIN_REFRESH = 1  # a server asking for less is not obeyed to the letter

# Baileys' defaults until the server says otherwise (10518 on: "safe, avoids 463").
DEFAULTS: dict[int, bool] = {
    PRIVACY_TOKEN_ON_1_TO_1: True,
    PROFILE_PIC_PRIVACY_TOKEN: True,
    LID_TRUSTED_TOKEN_ISSUE_TO_LID: False,
}


@dataclass
class ABProps:
    """The props the server last sent, by config code (or name when it gave no code)."""

    values: dict[str, str] = field(default_factory=dict)
    hash: str | None = None
    refresh: int | None = None  # seconds until the server wants us to ask again
    fetched: bool = False

    def get(self, code: int) -> str | None:
        value = self.values.get(str(code))
        if value is None and code in NAMES:
            value = self.values.get(NAMES[code])
        return value

    def enabled(self, code: int) -> bool:
        """A boolean prop: "true" or "1" is on; an absent one reads as Baileys' default."""
        value = self.get(code)
        if value is None:
            return DEFAULTS.get(code, False)
        return value in ("true", "1")

    def update(self, node: Node) -> None:
        """Take a `<props>` answer: its props replace ours unless it carries none."""
        if node.attr("hash"):
            self.hash = node.attr("hash")
        refresh = node.attr("refresh")
        self.refresh = int(refresh) if refresh and refresh.isdigit() else None
        props = parse_props(node)
        if props:
            self.values = props
        self.fetched = True


def parse_props(node: Node) -> dict[str, str]:
    out: dict[str, str] = {}
    for prop in node.children("prop"):
        key = prop.attr("name") or prop.attr("config_code")
        value = prop.attr("value") or prop.attr("config_value")
        if key and value is not None:
            out[key] = value
    return out


def props_query(last_hash: str | None) -> Node:
    attrs = {"protocol": "1"}
    if last_hash:
        attrs["hash"] = last_hash
    return Node(
        "iq",
        {"to": S_WHATSAPP_NET, "xmlns": "abt", "type": "get"},
        [Node("props", attrs)],
    )


async def fetch(client: Client) -> ABProps:
    """Ask for the props; keep them on the client and the hash in the creds."""
    props = client.ab_props
    result = await client.query(props_query(props.hash if props.fetched else None))
    node = result.child("props")
    if node is not None:
        client.ab_props.update(node)
        new_hash = node.attr("hash")
        if new_hash and new_hash != client.creds.last_prop_hash:
            client.creds.last_prop_hash = new_hash
            await client.save_creds()
    return client.ab_props


def next_fetch_in(props: ABProps) -> float:
    """Seconds until the next fetch: the last answer's `refresh`, else a day."""
    if props.refresh is None:
        return float(DEFAULT_REFRESH)
    return float(max(props.refresh, MIN_REFRESH))


async def refresh(client: Client) -> None:
    """The connection's props job (run with client.spawn, so it ends with the connection):
    fetch, then fetch again after each answer's refresh interval. A failed fetch keeps what we
    had (the defaults, before the first answer) and is tried again at the next interval."""
    while client.connected:
        try:
            await fetch(client)
        except ConnectionClosed:
            return  # the connection ended under the fetch: so does the job
        except (IQError, WAError, TimeoutError) as exc:
            reason = type(exc).__name__
            client.log.warning("AB props not fetched (%s): keeping the last ones", reason)
        await asyncio.sleep(next_fetch_in(client.ab_props))
