"""How the server ends a stream: <failure>, <stream:error> and the end of stream marker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wahttp.wa.binary import Node
from wahttp.wa.client import version
from wahttp.wa.close import CloseCode

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client


def stream_error_code(node: Node) -> tuple[int, str]:
    """Map a <stream:error> to (code, reason) the way WhatsApp clients read it."""
    children = node.children()
    first = children[0] if children else None
    reason = first.tag if first is not None else "unknown"
    if first is not None and first.tag == "conflict":
        kind = first.attr("type") or ""
        # device_removed is the phone unlinking us; replaced means another connection took over.
        if kind == "device_removed":
            return CloseCode.LOGGED_OUT, "device removed"
        return CloseCode.REPLACED, f"conflict{': ' + kind if kind else ''}"
    code_attr = node.attr("code")
    if code_attr and code_attr.isdigit():
        code = int(code_attr)
        return code, "restart required" if code == CloseCode.RESTART else reason
    return CloseCode.BAD_SESSION, reason


async def on_stream_error(client: Client, node: Node) -> None:
    code, reason = stream_error_code(node)
    await client.close(code, f"stream error: {reason}")


async def on_failure(client: Client, node: Node) -> None:
    reason = node.attr("reason") or str(CloseCode.BAD_SESSION)
    code = int(reason) if reason.isdigit() else CloseCode.BAD_SESSION
    if code == CloseCode.OUTDATED:
        # The server no longer takes the version we announced: say which setting to change.
        cfg = client.config
        text = version.outdated_reason(cfg.version, cfg.version_auto)
        client.log.error("login refused (405): %s", text)
        await client.close(code, text)
        return
    await client.close(code, f"login failure {code}")


async def on_stream_end(client: Client, node: Node) -> None:
    await client.close(CloseCode.TRANSPORT_CLOSED, "stream ended by the server")
