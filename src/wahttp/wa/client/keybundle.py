"""Pre-key bundles on the wire: `<user jid><registration/><type/><identity/><skey/><key/></user>`.

Shared by the client (fetching bundles, retry receipts) and the simulator (serving them).
"""

from __future__ import annotations

from wahttp.wa.binary import Node
from wahttp.wa.errors import WAError
from wahttp.wa.jid import Jid
from wahttp.wa.signal import PreKeyBundle

KEY_BUNDLE_TYPE = b"\x05"


class BundleError(WAError):
    """A pre-key bundle node is missing parts or malformed."""


def key_node(key_id: int, public: bytes) -> Node:
    return Node("key", {}, [Node("id", {}, key_id.to_bytes(3, "big")), Node("value", {}, public)])


def skey_node(key_id: int, public: bytes, signature: bytes) -> Node:
    return Node(
        "skey",
        {},
        [
            Node("id", {}, key_id.to_bytes(3, "big")),
            Node("value", {}, public),
            Node("signature", {}, signature),
        ],
    )


def bundle_children(bundle: PreKeyBundle) -> list[Node]:
    children = [
        Node("registration", {}, bundle.registration_id.to_bytes(4, "big")),
        Node("type", {}, KEY_BUNDLE_TYPE),
        Node("identity", {}, bundle.identity_key[-32:]),
        skey_node(
            bundle.signed_pre_key_id, bundle.signed_pre_key[-32:], bundle.signed_pre_key_signature
        ),
    ]
    if bundle.pre_key_id is not None and bundle.pre_key is not None:
        children.append(key_node(bundle.pre_key_id, bundle.pre_key[-32:]))
    return children


def _bytes(node: Node | None, tag: str, size: int | None = None) -> bytes:
    child = node.child(tag) if node is not None else None
    data = child.content_bytes() if child is not None else None
    if data is None or (size is not None and len(data) != size):
        raise BundleError(f"bundle without a valid <{tag}>")
    return data


def parse_bundle(user: Node, device: Jid | None = None) -> PreKeyBundle:
    """Read a bundle from a <user> (or <keys>) node; BundleError when it is incomplete."""
    if device is None:
        device = user.attr_jid("jid")
    skey = user.child("skey")
    key = user.child("key")
    one_time = None
    if key is not None:
        one_time = (int.from_bytes(_bytes(key, "id", 3), "big"), _bytes(key, "value", 32))
    return PreKeyBundle(
        registration_id=int.from_bytes(_bytes(user, "registration", 4), "big"),
        device_id=(device.device or 0) if device is not None else 0,
        identity_key=_bytes(user, "identity", 32),
        signed_pre_key_id=int.from_bytes(_bytes(skey, "id", 3), "big"),
        signed_pre_key=_bytes(skey, "value", 32),
        signed_pre_key_signature=_bytes(skey, "signature", 64),
        pre_key_id=one_time[0] if one_time else None,
        pre_key=one_time[1] if one_time else None,
    )
