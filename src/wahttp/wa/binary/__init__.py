"""WhatsApp's binary XML codec: nodes, token dictionaries, encoder and decoder."""

from __future__ import annotations

from wahttp.wa.binary.decoder import MAX_DEPTH, MAX_INFLATED_SIZE, decode_node, decode_node_body
from wahttp.wa.binary.encoder import encode_node, encode_node_body
from wahttp.wa.binary.node import Content, Node

__all__ = [
    "MAX_DEPTH",
    "MAX_INFLATED_SIZE",
    "Content",
    "Node",
    "decode_node",
    "decode_node_body",
    "encode_node",
    "encode_node_body",
]
