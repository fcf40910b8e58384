"""WhatsApp's Noise layer without I/O: framing, the XX handshake in both roles, transport cipher.

Client: intro() + encode_frame(hello()), read_server_hello, verify certs, finish, transport().
"""

from __future__ import annotations

from wahttp.wa.noise.frames import (
    DEFAULT_MAX_FRAME,
    MAX_FRAME_LENGTH,
    ROUTING_PREFIX,
    WA_HEADER,
    FrameReader,
    ServerIntroReader,
    encode_frame,
    intro,
)
from wahttp.wa.noise.handshake import (
    ClientFinishResult,
    ClientHandshake,
    ServerHandshake,
    ServerHelloResult,
)
from wahttp.wa.noise.state import PROTOCOL_NAME, SymmetricState
from wahttp.wa.noise.transport import TransportCipher

__all__ = [
    "DEFAULT_MAX_FRAME",
    "MAX_FRAME_LENGTH",
    "PROTOCOL_NAME",
    "ROUTING_PREFIX",
    "WA_HEADER",
    "ClientFinishResult",
    "ClientHandshake",
    "FrameReader",
    "ServerHandshake",
    "ServerHelloResult",
    "ServerIntroReader",
    "SymmetricState",
    "TransportCipher",
    "encode_frame",
    "intro",
]
