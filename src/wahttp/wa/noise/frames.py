"""WhatsApp's stream framing: the intro header once, then frames of 3-byte length + payload."""

from __future__ import annotations

from wahttp.wa.errors import FrameError

# "WA", protocol major 6, binary dictionary version 3 (NOISE_WA_HEADER in Baileys).
WA_HEADER = b"WA\x06\x03"
# Edge routing prefix: the server told us which edge to reach; it precedes WA_HEADER.
ROUTING_PREFIX = b"ED\x00\x01"
LENGTH_SIZE = 3
MAX_FRAME_LENGTH = 0xFFFFFF
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
# Real routing info is a few dozen bytes; the cap stops a peer from making us buffer 16 MiB
# of intro before we can tell it is garbage.
DEFAULT_MAX_ROUTING_INFO = 4096


def _length(n: int) -> bytes:
    return n.to_bytes(LENGTH_SIZE, "big")


def intro(routing_info: bytes | None = None) -> bytes:
    """What the client sends once before its first frame (the ED prefix only with routing info)."""
    if routing_info is None:
        return WA_HEADER
    if len(routing_info) > MAX_FRAME_LENGTH:
        raise FrameError("routing info too long for its 3-byte length")
    return ROUTING_PREFIX + _length(len(routing_info)) + routing_info + WA_HEADER


def encode_frame(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_LENGTH:
        raise FrameError(f"frame of {len(payload)} bytes exceeds the 3-byte length limit")
    return _length(len(payload)) + payload


class FrameReader:
    """Splits a byte stream into frames, whatever way the stream was chunked.

    Appending to a bytearray and deleting from its front are both amortised O(1) per byte in
    CPython, so the cost stays linear in the bytes fed. After a FrameError the stream is out of
    sync for good, so every later feed raises too.
    """

    __slots__ = ("_buf", "_failed", "_max_frame", "_need")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 0:
            raise ValueError("max_frame must not be negative")
        self._max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None  # payload length of the frame being read, once known
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes received that are not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed:
            raise FrameError("frame stream already failed")
        self._buf += data
        frames: list[bytes] = []
        while (frame := self._next_frame()) is not None:
            frames.append(frame)
        return frames

    def _next_frame(self) -> bytes | None:
        if self._need is None:
            if len(self._buf) < LENGTH_SIZE:
                return None
            self._need = self._read_length()
            del self._buf[:LENGTH_SIZE]
        if len(self._buf) < self._need:
            return None
        frame = bytes(self._buf[: self._need])
        del self._buf[: self._need]
        self._need = None
        return frame

    def _read_length(self) -> int:
        size = int.from_bytes(self._buf[:LENGTH_SIZE], "big")
        if size > self._max_frame:
            self._failed = True
            raise FrameError(f"frame of {size} bytes exceeds the limit of {self._max_frame}")
        return size


class ServerIntroReader:
    """The server's side of the stream: checks the client's intro, then yields frames.

    The intro is an optional `ED 00 01` + 3-byte length + routing info, then exactly the
    expected header; anything else raises FrameError as soon as it can be told apart.
    """

    __slots__ = (
        "_expected_header",
        "_failed",
        "_frames",
        "_intro",
        "_max_routing_info",
        "header",
        "routing_info",
    )

    def __init__(
        self,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        header: bytes = WA_HEADER,
        max_routing_info: int = DEFAULT_MAX_ROUTING_INFO,
    ) -> None:
        self._expected_header = header
        self._max_routing_info = max_routing_info
        self._frames = FrameReader(max_frame)
        self._intro = bytearray()
        self._failed = False
        self.header: bytes | None = None  # set once the intro has been read
        self.routing_info: bytes | None = None  # the ED prefix's payload, if the client sent one

    @property
    def intro_done(self) -> bool:
        return self.header is not None

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed:
            raise FrameError("frame stream already failed")
        if self.header is None:
            data = self._feed_intro(data)
            if self.header is None:
                return []
        return self._frames.feed(data)

    def _feed_intro(self, data: bytes) -> bytes:
        """Consume intro bytes; return what follows the intro (empty while it is incomplete)."""
        self._intro += data
        try:
            end = self._parse_intro()
        except FrameError:
            self._failed = True
            raise
        if end is None:
            return b""
        rest = bytes(self._intro[end:])
        self._intro = bytearray()
        return rest

    def _parse_intro(self) -> int | None:
        """Offset where the intro ends, None if more bytes are needed; FrameError if malformed."""
        buf = self._intro
        if buf.startswith(ROUTING_PREFIX[: len(buf)]):
            return self._parse_routed_intro()
        return self._parse_header(0)

    def _parse_routed_intro(self) -> int | None:
        start = len(ROUTING_PREFIX)
        if len(self._intro) < start + LENGTH_SIZE:
            return None
        size = int.from_bytes(self._intro[start : start + LENGTH_SIZE], "big")
        if size > self._max_routing_info:
            raise FrameError(f"routing info of {size} bytes exceeds {self._max_routing_info}")
        offset = start + LENGTH_SIZE + size
        if len(self._intro) < offset:
            return None
        end = self._parse_header(offset)
        if end is not None:
            self.routing_info = bytes(self._intro[start + LENGTH_SIZE : offset])
        return end

    def _parse_header(self, offset: int) -> int | None:
        got = bytes(self._intro[offset : offset + len(self._expected_header)])
        if not self._expected_header.startswith(got):
            raise FrameError("stream does not start with the WhatsApp intro header")
        if len(got) < len(self._expected_header):
            return None
        self.header = got
        return offset + len(got)
