"""Stream framing: intro header, 3-byte length frames, readers that survive any chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wahttp.wa.errors import FrameError
from wahttp.wa.noise import (
    MAX_FRAME_LENGTH,
    WA_HEADER,
    FrameReader,
    ServerIntroReader,
    encode_frame,
    intro,
)

PAYLOADS = [b"first", b"", b"x" * 300, bytes(range(256)) * 3]
STREAM = b"".join(encode_frame(p) for p in PAYLOADS)


def _feed_all(reader: FrameReader | ServerIntroReader, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(reader.feed(chunk))
    return out


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_header_constant() -> None:
    assert bytes([0x57, 0x41, 0x06, 0x03]) == WA_HEADER


def test_intro_without_routing_info() -> None:
    assert intro() == WA_HEADER


def test_intro_with_routing_info() -> None:
    assert intro(b"route") == b"ED\x00\x01\x00\x00\x05route" + WA_HEADER
    # An empty routing info still sends the prefix, as Baileys does for an empty buffer.
    assert intro(b"") == b"ED\x00\x01\x00\x00\x00" + WA_HEADER


def test_encode_frame() -> None:
    assert encode_frame(b"") == b"\x00\x00\x00"
    assert encode_frame(b"abc") == b"\x00\x00\x03abc"
    assert encode_frame(b"z" * 0x10203)[:3] == b"\x01\x02\x03"


def test_encode_frame_too_large() -> None:
    assert len(encode_frame(bytes(MAX_FRAME_LENGTH))) == MAX_FRAME_LENGTH + 3
    with pytest.raises(FrameError):
        encode_frame(bytes(MAX_FRAME_LENGTH + 1))


def test_several_frames_in_one_feed() -> None:
    reader = FrameReader()
    assert reader.feed(STREAM) == PAYLOADS
    assert reader.buffered == 0


def test_split_at_every_position() -> None:
    for cut in range(len(STREAM) + 1):
        assert _feed_all(FrameReader(), [STREAM[:cut], STREAM[cut:]]) == PAYLOADS, cut


def test_byte_by_byte() -> None:
    reader = FrameReader()
    assert _feed_all(reader, [bytes([b]) for b in STREAM]) == PAYLOADS


def test_partial_frame_stays_buffered() -> None:
    reader = FrameReader()
    assert reader.feed(b"\x00\x00\x05ab") == []
    assert reader.buffered == 2
    assert reader.feed(b"cde\x00") == [b"abcde"]
    assert reader.buffered == 1


def test_large_frame_in_tiny_pieces_is_linear() -> None:
    # A quadratic buffer would copy ~10^10 bytes here; the linear one finishes at once.
    payload = bytes(100_000)
    data = encode_frame(payload)
    reader = FrameReader()
    frames: list[bytes] = []
    for i in range(len(data)):
        frames.extend(reader.feed(data[i : i + 1]))
    assert frames == [payload]


def test_oversized_frame_raises_and_poisons() -> None:
    reader = FrameReader(max_frame=10)
    assert reader.feed(encode_frame(b"0123456789")) == [b"0123456789"]
    with pytest.raises(FrameError):
        reader.feed(encode_frame(b"0123456789a"))
    with pytest.raises(FrameError):
        reader.feed(encode_frame(b"ok"))


def test_default_limit_is_four_mib() -> None:
    reader = FrameReader()
    with pytest.raises(FrameError):
        reader.feed((4 * 1024 * 1024 + 1).to_bytes(3, "big"))
    assert FrameReader().feed((4 * 1024 * 1024).to_bytes(3, "big")) == []


def test_server_reader_plain_intro() -> None:
    reader = ServerIntroReader()
    assert reader.feed(intro() + STREAM) == PAYLOADS
    assert reader.header == WA_HEADER
    assert reader.routing_info is None
    assert reader.intro_done


def test_server_reader_routing_intro() -> None:
    reader = ServerIntroReader()
    assert reader.feed(intro(b"\x08\x02\x08\x05") + STREAM) == PAYLOADS
    assert reader.routing_info == b"\x08\x02\x08\x05"
    assert reader.header == WA_HEADER


@pytest.mark.parametrize("routing", [None, b"", b"edge-routing"])
def test_server_reader_split_everywhere(routing: bytes | None) -> None:
    data = intro(routing) + STREAM
    for cut in range(len(data) + 1):
        reader = ServerIntroReader()
        assert _feed_all(reader, [data[:cut], data[cut:]]) == PAYLOADS
        assert reader.routing_info == routing
    reader = ServerIntroReader()
    assert _feed_all(reader, [bytes([b]) for b in data]) == PAYLOADS


def test_server_reader_waits_for_intro() -> None:
    reader = ServerIntroReader()
    assert reader.feed(b"WA") == []
    assert not reader.intro_done
    assert reader.header is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\n", id="http"),
        pytest.param(b"X", id="first-byte"),
        pytest.param(b"WA\x06\x02", id="old-dict-version"),
        pytest.param(b"WA\x05", id="old-major"),
        pytest.param(b"ED\x00\x02", id="bad-prefix-version"),
        pytest.param(b"ED\x00\x01\x00\x00\x02abWB", id="bad-header-after-routing"),
        pytest.param(b"ED\x00\x01\x00\x10\x01", id="routing-too-long"),
    ],
)
def test_server_reader_rejects_bad_intro(data: bytes) -> None:
    reader = ServerIntroReader()
    with pytest.raises(FrameError):
        reader.feed(data)
    with pytest.raises(FrameError):
        reader.feed(intro())


def test_server_reader_enforces_frame_limit() -> None:
    reader = ServerIntroReader(max_frame=4)
    with pytest.raises(FrameError):
        reader.feed(intro() + encode_frame(b"12345"))


@settings(max_examples=300)
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_random_bytes_only_raise_frame_error(data: bytes, cuts: list[int]) -> None:
    chunks = _chunks(data, [c % (len(data) + 1) for c in cuts])
    for reader in (FrameReader(max_frame=1000), ServerIntroReader(max_frame=1000)):
        try:
            frames = _feed_all(reader, chunks)
        except FrameError:
            continue
        assert sum(len(f) + 3 for f in frames) <= len(data)


@settings(max_examples=200)
@given(
    st.lists(st.binary(max_size=600), max_size=10),
    st.lists(st.integers(min_value=0), max_size=20),
    st.one_of(st.none(), st.binary(max_size=40)),
)
def test_any_chunking_round_trips(
    payloads: list[bytes], cuts: list[int], routing: bytes | None
) -> None:
    data = b"".join(encode_frame(p) for p in payloads)
    assert _feed_all(FrameReader(), _chunks(data, [c % (len(data) + 1) for c in cuts])) == payloads
    full = intro(routing) + data
    reader = ServerIntroReader()
    assert _feed_all(reader, _chunks(full, [c % (len(full) + 1) for c in cuts])) == payloads
    assert reader.routing_info == routing
