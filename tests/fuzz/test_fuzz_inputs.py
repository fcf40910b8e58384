"""Fuzzing every parser that reads bytes from the network or from a Baileys auth folder.

Each target may only fail with our own error type: the binary decoder with DecodeError, the
frame readers with FrameError, the Noise handshake with HandshakeError (CertificateError for
the certificate chain), the transport cipher with CipherError, pair-success with PairingError,
Signal with SignalError, pre-key bundles with BundleError, Message payloads with PayloadError
and auth folders with AuthFolderError/StoreError. Inputs are random bytes and, mostly,
mutations of valid inputs (bit flips, boundary bytes, inserted, deleted, duplicated and cut
ranges), plus structured forgeries that pass the outer checks (a correct HMAC, MAC, signature
or AEAD tag around hostile content) so the fuzzer reaches the code behind them.

Deterministic: `derandomize=True`, no example database, fixed keys. Bounded to run in well under
a minute.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import socket
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wahttp.wa import crypto
from wahttp.wa.auth.bufferjson import b64encode, js_json_dumps, js_json_loads
from wahttp.wa.auth.creds import Creds, Me, SignalIdentity, SignedPreKey
from wahttp.wa.auth.filenames import split_file_name
from wahttp.wa.auth.multifile import (
    AuthFolderError,
    FolderState,
    read_folder,
    write_folder,
)
from wahttp.wa.auth.sealing import SealContext, Sealer
from wahttp.wa.binary import Node, decode_node, encode_node
from wahttp.wa.certs import issue_cert_chain, verify_cert_chain
from wahttp.wa.client.keybundle import BundleError, bundle_children, parse_bundle
from wahttp.wa.client.messages import (
    Message,
    PayloadError,
    content_of,
    device_sent,
    pad,
    parse,
    text_message,
)
from wahttp.wa.client.pair import (
    ADV_ACCOUNT_SIG_PREFIX,
    ADV_HOSTED_ACCOUNT_SIG_PREFIX,
    verify_pair_success,
)
from wahttp.wa.crypto import KeyPair, clamp, with_key_type
from wahttp.wa.errors import (
    CertificateError,
    CipherError,
    DecodeError,
    FrameError,
    HandshakeError,
    PairingError,
    StoreError,
)
from wahttp.wa.noise import (
    DEFAULT_MAX_FRAME,
    ClientHandshake,
    FrameReader,
    ServerHandshake,
    ServerIntroReader,
    SymmetricState,
    TransportCipher,
    encode_frame,
    intro,
)
from wahttp.wa.noise.frames import WA_HEADER
from wahttp.wa.proto import adv_pb2, signal_pb2
from wahttp.wa.proto.handshake_pb2 import CertChain, HandshakeMessage
from wahttp.wa.signal import (
    DuplicateMessage,
    PreKeyBundle,
    SessionRecord,
    SignalError,
    build_session,
    decrypt_message,
    decrypt_prekey_message,
    encrypt,
    parse_prekey_message,
)
from wahttp.wa.signal.messages import encode_whisper
from wahttp.wa.signal.ratchet import cbc_encrypt, mac, message_keys, next_sending_key

FUZZ = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=150)
T = TypeVar("T")


def _key(label: str) -> KeyPair:
    """A fixed key pair per label, so every run sees the same valid inputs."""
    return KeyPair.from_private(clamp(hashlib.sha256(label.encode()).digest()))


# -- mutations -----------------------------------------------------------------------------------

_INTERESTING = (0x00, 0x01, 0x02, 0x05, 0x7F, 0x80, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF)
_WIDE = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0xFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
_OPS = ("flip", "set", "insert", "delete", "truncate", "duplicate", "wide")


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_ops: int = 4) -> bytes:
    """`seed` with 1..max_ops random edits."""
    buf = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(_OPS))
        pos = draw(st.integers(0, len(buf)))
        if op == "flip" and pos < len(buf):
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and pos < len(buf):
            buf[pos] = draw(st.sampled_from(_INTERESTING) | st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[pos:]
        elif op == "duplicate":
            start = draw(st.integers(0, len(buf)))
            buf[pos:pos] = buf[start : start + draw(st.integers(1, 32))]
        else:
            width = draw(st.sampled_from((1, 2, 3, 4)))
            value = draw(st.sampled_from(_WIDE)) & ((1 << (8 * width)) - 1)
            buf[pos : pos + width] = value.to_bytes(width, "big")
    return bytes(buf)


def mutations_of(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(seeds).flatmap(mutated)


# Curve25519 u-coordinates of small order (and p-1, p, p+1): DH with them must be refused.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    b"\xec" + b"\xff" * 30 + b"\x7f",
    b"\xed" + b"\xff" * 30 + b"\x7f",
    b"\xee" + b"\xff" * 30 + b"\x7f",
]


def public_keys(*valid: bytes) -> st.SearchStrategy[bytes]:
    """Public keys as a peer may send them: valid ones, low-order points, wrong sizes."""
    return st.one_of(
        st.sampled_from(list(valid)),
        st.sampled_from(list(valid)).map(with_key_type),
        st.sampled_from(LOW_ORDER),
        st.sampled_from(LOW_ORDER).map(with_key_type),
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=33, max_size=33),
        st.binary(max_size=40),
    )


class Damage:
    """Which parts of a valid input an example replaces with hostile values: none, one or two,
    so the rest stays right and the input gets past the checks in front of the one attacked."""

    def __init__(self, draw: st.DrawFn, parts: Sequence[str], at_most: int = 2) -> None:
        self._draw = draw
        self.parts = draw(st.sets(st.sampled_from(parts), max_size=at_most))

    def __call__(self, part: str, valid: T, hostile: st.SearchStrategy[T]) -> T:
        return self._draw(hostile) if part in self.parts else valid


_UINT32 = st.sampled_from((0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF)) | st.integers(0, 2**32 - 1)
_UINT64 = st.sampled_from((0, 1, 2**31, 2**32, 2**63, 2**64 - 1)) | st.integers(0, 2**64 - 1)


# -- binary nodes --------------------------------------------------------------------------------


@cache
def _stanzas() -> list[Node]:
    """Nodes like those the server sends: tokens, every JID form, packed strings, binaries."""
    key = _key("stanza")
    bundle = PreKeyBundle(
        registration_id=4321,
        device_id=3,
        identity_key=key.public,
        signed_pre_key_id=7,
        signed_pre_key=_key("spk").public,
        signed_pre_key_signature=key.sign(with_key_type(_key("spk").public)),
        pre_key_id=77,
        pre_key=_key("opk").public,
    )
    return [
        Node(
            "message",
            {"from": "15551234567@s.whatsapp.net", "id": "3EB0AB12CD34EF56", "t": "1700000000"},
            [Node("enc", {"v": "2", "type": "pkmsg"}, bytes(range(200)))],
        ),
        Node(
            "message",
            {"from": "123456789012345:7@lid", "participant": "15551234567:2@s.whatsapp.net"},
            [Node("enc", {"type": "msg"}, bytes(300))],
        ),
        Node(
            "iq",
            {"from": "s.whatsapp.net", "type": "result", "id": "1234.5678-9"},
            [
                Node(
                    "list",
                    {},
                    [
                        Node(
                            "user", {"jid": "15551234567:3@s.whatsapp.net"}, bundle_children(bundle)
                        )
                    ],
                )
            ],
        ),
        Node(
            "receipt",
            {"from": "120363025246125486@g.us", "type": "read", "id": "ABCDEF0123456789"},
            [Node("list", {}, [Node("item", {"id": f"3EB0{n:012X}"}) for n in range(3)])],
        ),
        Node(
            "success",
            {"lid": "98765432109876@lid", "creation": "1700000000", "location": "frc"},
        ),
        Node("stream:error", {"code": "515"}, [Node("conflict", {"type": "replaced"})]),
        Node(
            "notification",
            {"from": "15551234567:5@hosted", "type": "devices", "t": "1700000001"},
            [Node("devices", {"dhash": "2:abcd"}, [Node("device", {"jid": "1@hosted.lid"})])],
        ),
        Node("ib", {}, [Node("edge_routing", {}, [Node("routing_info", {}, b"\x08\x02")])]),
        Node("presence", {"from": "status@broadcast", "type": "unavailable"}, "0123456789"),
        Node("call", {"from": "server@c.us"}, "DEADBEEF"),
    ]


@cache
def node_frames() -> list[bytes]:
    return [encode_node(node) for node in _stanzas()]


def check_node(node: Node) -> None:
    """What decode_node promises: a tag, string attributes, and well-typed content."""
    assert isinstance(node.tag, str) and node.tag
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in node.attrs.items())
    content = node.content
    if isinstance(content, list):
        for child in content:
            check_node(child)
    else:
        assert content is None or isinstance(content, bytes | str)


def decode_or_decode_error(data: bytes) -> Node | None:
    try:
        node = decode_node(data)
    except DecodeError:
        return None
    check_node(node)
    return node


@FUZZ
@given(st.binary(max_size=300))
def test_decode_node_random_bytes(data: bytes) -> None:
    decode_or_decode_error(data)
    decode_or_decode_error(b"\x00" + data)
    decode_or_decode_error(b"\x02" + zlib.compress(data))


@settings(FUZZ, max_examples=800)
@given(st.data())
def test_decode_node_mutated_stanzas(data: st.DataObject) -> None:
    frame = data.draw(mutations_of(node_frames()))
    decode_or_decode_error(frame)


@FUZZ
@given(st.data())
def test_decode_node_mutated_compressed_stanzas(data: st.DataObject) -> None:
    body = data.draw(st.sampled_from(node_frames()))[1:]
    if data.draw(st.booleans()):
        body = data.draw(mutated(body))  # a hostile node, compressed correctly
    frame = b"\x02" + zlib.compress(body)
    if data.draw(st.booleans()):
        frame = data.draw(mutated(frame))  # a damaged compressed stream
    decode_or_decode_error(frame)


def test_decode_node_valid_stanzas_round_trip() -> None:
    for node, frame in zip(_stanzas(), node_frames(), strict=True):
        assert decode_node(frame) == node
        assert decode_node(b"\x02" + zlib.compress(frame[1:])) == node


# -- framing and the transport cipher ------------------------------------------------------------


def _chunks(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted(cuts):
        yield data[start:cut]
        start = cut
    yield data[start:]


_PAYLOADS = st.lists(st.binary(max_size=80), min_size=1, max_size=4)
_ROUTING = st.none() | st.binary(max_size=24)


@FUZZ
@given(st.data(), _PAYLOADS, _ROUTING)
def test_server_intro_reader_mutated_streams(
    data: st.DataObject, payloads: list[bytes], routing: bytes | None
) -> None:
    stream = intro(routing) + b"".join(encode_frame(p) for p in payloads)
    damaged = data.draw(mutated(stream))
    cuts = data.draw(st.lists(st.integers(0, len(damaged)), max_size=5))
    max_frame = data.draw(st.sampled_from((0, 16, 64, DEFAULT_MAX_FRAME)))
    max_routing = data.draw(st.sampled_from((0, 8, 4096)))
    reader = ServerIntroReader(max_frame, max_routing_info=max_routing)
    try:
        for chunk in _chunks(damaged, cuts):
            for frame in reader.feed(chunk):
                assert len(frame) <= max_frame
    except FrameError:
        with pytest.raises(FrameError):  # out of sync for good
            reader.feed(b"\x00\x00\x00")


@FUZZ
@given(st.data(), _PAYLOADS)
def test_frame_reader_mutated_streams(data: st.DataObject, payloads: list[bytes]) -> None:
    stream = data.draw(mutated(b"".join(encode_frame(p) for p in payloads)))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=5))
    reader = FrameReader(data.draw(st.sampled_from((0, 16, 64, DEFAULT_MAX_FRAME))))
    received = 0
    try:
        for chunk in _chunks(stream, cuts):
            received += sum(3 + len(frame) for frame in reader.feed(chunk))
    except FrameError:
        with pytest.raises(FrameError):
            reader.feed(b"")
    else:
        # A frame whose length was read waits without its 3 length bytes in `buffered`.
        assert received + reader.buffered <= len(stream)


@FEW
@given(st.data(), _PAYLOADS, _ROUTING)
def test_server_intro_reader_intact_streams_in_any_chunking(
    data: st.DataObject, payloads: list[bytes], routing: bytes | None
) -> None:
    """The harness above is meaningful: undamaged streams come out whole however they arrive."""
    stream = intro(routing) + b"".join(encode_frame(p) for p in payloads)
    reader = ServerIntroReader()
    frames: list[bytes] = []
    for chunk in _chunks(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=6))):
        frames += reader.feed(chunk)
    assert frames == payloads
    assert reader.routing_info == routing


@FUZZ
@given(st.data())
def test_transport_cipher_refuses_damaged_frames(data: st.DataObject) -> None:
    write, read = hashlib.sha256(b"w").digest(), hashlib.sha256(b"r").digest()
    sender = TransportCipher(write_key=write, read_key=read)
    receiver = TransportCipher(write_key=read, read_key=write)
    frame = sender.encrypt(data.draw(st.binary(max_size=64)))
    damaged = data.draw(mutated(frame) | st.binary(max_size=40))
    with contextlib.suppress(CipherError):
        receiver.decrypt(damaged)


# -- Noise handshake and certificate chain -------------------------------------------------------

ROOT = _key("root")
INTERMEDIATE = _key("intermediate")
SERVER_STATIC = _key("server-static")
SERVER_EPHEMERAL = _key("server-ephemeral")
CLIENT_EPHEMERAL = _key("client-ephemeral")
CLIENT_NOISE = _key("client-noise")
PHONE = _key("phone-identity")
NOW = 1_700_000_000


@cache
def cert_chain() -> bytes:
    return issue_cert_chain(
        ROOT,
        SERVER_STATIC.public,
        intermediate=INTERMEDIATE,
        not_before=NOW - 86400,
        not_after=NOW + 86400,
    )


def _server() -> ServerHandshake:
    return ServerHandshake(SERVER_EPHEMERAL, SERVER_STATIC, cert_chain())


def _client() -> ClientHandshake:
    return ClientHandshake(CLIENT_EPHEMERAL, CLIENT_NOISE)


@cache
def handshake_messages() -> tuple[bytes, bytes, bytes]:
    """A valid (client hello, server hello, client finish); deterministic with fixed keys."""
    client, server = _client(), _server()
    hello = client.hello()
    server.read_hello(hello)
    server_hello = server.server_hello()
    result = client.read_server_hello(server_hello)
    verify_cert_chain(result.cert_chain, result.server_static, ROOT.public, now=NOW)
    return hello, server_hello, client.finish(b"client payload")


@FUZZ
@given(st.data())
def test_server_reads_only_handshake_errors_from_damaged_client_messages(
    data: st.DataObject,
) -> None:
    hello, _, finish = handshake_messages()
    server = _server()
    damage_hello = data.draw(st.booleans())  # else the hello is intact and the finish damaged
    with contextlib.suppress(HandshakeError):
        server.read_hello(
            data.draw(mutated(hello) | st.binary(max_size=80)) if damage_hello else hello
        )
        server.server_hello()
        server.read_finish(finish if damage_hello else data.draw(mutated(finish)))
        server.transport()


@FUZZ
@given(st.data())
def test_client_reads_only_handshake_errors_from_damaged_server_hello(
    data: st.DataObject,
) -> None:
    _, server_hello, _ = handshake_messages()
    client = _client()
    client.hello()
    try:
        result = client.read_server_hello(data.draw(mutated(server_hello) | st.binary(max_size=80)))
        verify_cert_chain(result.cert_chain, result.server_static, ROOT.public, now=NOW)
    except HandshakeError:  # CertificateError is one
        return


_STEPS = ("hello", "read_server_hello", "finish", "transport", "read_hello", "server_hello")


@FEW
@given(st.lists(st.tuples(st.sampled_from(_STEPS), st.binary(max_size=40)), max_size=6))
def test_handshake_steps_in_any_order_raise_only_handshake_errors(
    calls: list[tuple[str, bytes]],
) -> None:
    client, server = _client(), _server()
    actions: dict[str, Callable[[bytes], object]] = {
        "hello": lambda _: client.hello(),
        "read_server_hello": client.read_server_hello,
        "finish": client.finish,
        "transport": lambda _: client.transport(),
        "read_hello": server.read_hello,
        "server_hello": lambda _: server.server_hello(),
    }
    for step, payload in calls:
        with contextlib.suppress(HandshakeError):
            actions[step](payload)


def _forged_server_hello(claimed_static: bytes, payload: bytes, ephemeral: bytes) -> bytes:
    """A server hello whose AEAD tags are right for whatever it claims (we hold the client's
    ephemeral private key, so we can compute every secret the client will)."""
    state = SymmetricState()
    state.mix_hash(WA_HEADER)
    state.mix_hash(CLIENT_EPHEMERAL.public)
    state.mix_hash(ephemeral)
    with contextlib.suppress(ValueError):
        state.mix_key(CLIENT_EPHEMERAL.dh(ephemeral))
    static = state.encrypt_and_hash(claimed_static)
    with contextlib.suppress(ValueError):
        state.mix_key(CLIENT_EPHEMERAL.dh(claimed_static))
    sealed = state.encrypt_and_hash(payload)
    hello = HandshakeMessage.ServerHello(ephemeral=ephemeral, static=static, payload=sealed)
    return HandshakeMessage(serverHello=hello).SerializeToString()


_SERIALS = st.none() | st.sampled_from((0, 1, 2, 3)) | _UINT32
_TIMES = st.none() | st.sampled_from((NOW - 1, NOW, NOW + 1)) | _UINT64
_CERT_FIELDS = ("serial", "issuerSerial", "key", "notBefore", "notAfter", "bytes", "signer", "sig")
_CHAIN_PARTS = (
    *(f"{cert}.{part}" for cert in ("inter", "leaf") for part in _CERT_FIELDS),
    "no inter",
    "no leaf",
)


def _cert(
    damage: Damage, which: str, *, serial: int, issuer: int, key: bytes, signer: KeyPair
) -> CertChain.NoiseCertificate:
    """One certificate, right except for the parts `damage` names (None: field left out)."""
    details = CertChain.NoiseCertificate.Details()
    for name, value in (
        ("serial", damage(f"{which}.serial", serial, _SERIALS)),
        ("issuerSerial", damage(f"{which}.issuerSerial", issuer, _SERIALS)),
        ("key", damage(f"{which}.key", key, st.none() | public_keys(key))),
        ("notBefore", damage(f"{which}.notBefore", NOW - 86400, _TIMES)),
        ("notAfter", damage(f"{which}.notAfter", NOW + 86400, _TIMES)),
    ):
        if value is not None:
            setattr(details, name, value)
    raw = details.SerializeToString()
    raw = damage(f"{which}.bytes", raw, mutated(raw))
    signer = damage(f"{which}.signer", signer, st.sampled_from((ROOT, INTERMEDIATE, PHONE)))
    signature = damage(f"{which}.sig", signer.sign(raw), st.binary(max_size=70))
    return CertChain.NoiseCertificate(details=raw, signature=signature)


@st.composite
def cert_chains(draw: st.DrawFn) -> bytes:
    """Chains from our root to the server's static key with one or two parts made hostile;
    signatures are made over whatever the details turned out to be."""
    damage = Damage(draw, _CHAIN_PARTS)
    chain = CertChain()
    if "no inter" not in damage.parts:
        chain.intermediate.CopyFrom(
            _cert(damage, "inter", serial=1, issuer=0, key=INTERMEDIATE.public, signer=ROOT)
        )
    if "no leaf" not in damage.parts:
        chain.leaf.CopyFrom(
            _cert(damage, "leaf", serial=2, issuer=1, key=SERVER_STATIC.public, signer=INTERMEDIATE)
        )
    return chain.SerializeToString()


def _check_chain(chain: bytes, static: bytes, now: int) -> None:
    try:
        verify_cert_chain(chain, static, ROOT.public, now=now)
    except CertificateError:
        return
    # It verified: then it really is a chain from our root to this static key.
    parsed = CertChain.FromString(chain)
    inter = CertChain.NoiseCertificate.Details.FromString(parsed.intermediate.details)
    leaf = CertChain.NoiseCertificate.Details.FromString(parsed.leaf.details)
    assert crypto.verify(ROOT.public, parsed.intermediate.details, parsed.intermediate.signature)
    assert crypto.verify(inter.key, parsed.leaf.details, parsed.leaf.signature)
    assert inter.issuerSerial == 0 and leaf.issuerSerial == inter.serial
    assert leaf.key == static


@FUZZ
@given(st.data())
def test_verify_cert_chain_mutated_bytes(data: st.DataObject) -> None:
    chain = data.draw(mutated(cert_chain()) | st.binary(max_size=200))
    static = data.draw(public_keys(SERVER_STATIC.public))
    _check_chain(chain, static, NOW)


@settings(FUZZ, max_examples=600)
@given(
    cert_chains(),
    st.just(SERVER_STATIC.public) | public_keys(SERVER_STATIC.public),
    st.sampled_from((NOW, NOW - 86400, NOW + 86400, 0, 2**64 - 1)),
)
def test_verify_cert_chain_signed_hostile_details(chain: bytes, static: bytes, now: int) -> None:
    _check_chain(chain, static, now)


@st.composite
def forged_server_hellos(draw: st.DrawFn) -> bytes:
    damage = Damage(draw, ("static", "ephemeral", "payload"))
    return _forged_server_hello(
        damage("static", SERVER_STATIC.public, public_keys(SERVER_STATIC.public)),
        damage("payload", draw(cert_chains()), mutations_of([cert_chain()])),
        damage("ephemeral", SERVER_EPHEMERAL.public, public_keys(SERVER_EPHEMERAL.public)),
    )


@FUZZ
@given(forged_server_hellos())
def test_client_handshake_with_authenticated_hostile_server_hello(hello: bytes) -> None:
    """A server hello that decrypts correctly but claims odd keys and certificates."""
    client = _client()
    client.hello()
    try:
        result = client.read_server_hello(hello)
    except HandshakeError:
        return
    # Only a static key that a chain from our root certifies gets through (the fuzzer holds the
    # root key here, so it may well sign a chain for a key of its own choosing).
    _check_chain(result.cert_chain, result.server_static, NOW)


# -- pair-success --------------------------------------------------------------------------------


@cache
def base_creds() -> Creds:
    identity = _key("identity")
    signed = _key("signed-pre-key")
    return Creds(
        noise_key=_key("noise"),
        pairing_ephemeral_key=_key("pairing-ephemeral"),
        signed_identity_key=identity,
        signed_pre_key=SignedPreKey(signed, identity.sign(with_key_type(signed.public)), 1),
        registration_id=1234,
        adv_secret_key=b64encode(hashlib.sha256(b"adv").digest()),
    )


def _adv_secret() -> bytes:
    return hashlib.sha256(b"adv").digest()


def _device_identity(device_type: adv_pb2.ADVEncryptionType = adv_pb2.E2EE) -> bytes:
    return adv_pb2.ADVDeviceIdentity(
        rawId=99, timestamp=NOW, keyIndex=3, accountType=adv_pb2.E2EE, deviceType=device_type
    ).SerializeToString()


def _sign_account(details: bytes, hosted: bool, signer: KeyPair = PHONE) -> bytes:
    prefix = ADV_HOSTED_ACCOUNT_SIG_PREFIX if hosted else ADV_ACCOUNT_SIG_PREFIX
    own = base_creds().signed_identity_key.public
    return signer.sign(prefix + details + own)


def _wrap(account: bytes, account_type: adv_pb2.ADVEncryptionType = adv_pb2.E2EE) -> bytes:
    prefix = ADV_HOSTED_ACCOUNT_SIG_PREFIX if account_type == adv_pb2.HOSTED else b""
    return adv_pb2.ADVSignedDeviceIdentityHMAC(
        details=account,
        hmac=crypto.hmac_sha256(_adv_secret(), prefix + account),
        accountType=account_type,
    ).SerializeToString()


@cache
def pair_success_blob() -> bytes:
    details = _device_identity()
    account = adv_pb2.ADVSignedDeviceIdentity(
        details=details,
        accountSignatureKey=PHONE.public,
        accountSignature=_sign_account(details, hosted=False),
    ).SerializeToString()
    return _wrap(account)


def _check_pair_success(blob: bytes) -> None:
    try:
        account, _ = verify_pair_success(base_creds(), blob)
    except PairingError:
        return
    assert len(account.deviceSignature) == 64


_ENCRYPTION = st.none() | st.sampled_from((adv_pb2.E2EE, adv_pb2.HOSTED))


_ENCRYPTION = st.none() | st.sampled_from((adv_pb2.E2EE, adv_pb2.HOSTED))
_PAIR_PARTS = (
    "rawId",
    "timestamp",
    "keyIndex",
    "accountType",
    "deviceType",
    "details bytes",
    "no details",
    "prefix",
    "signer",
    "signature key",
    "signature",
    "device signature",
    "account bytes",
    "hmac type",
)


def _is_hosted(details: bytes) -> bool:
    with contextlib.suppress(ProtobufDecodeError):
        return adv_pb2.ADVDeviceIdentity.FromString(details).deviceType == adv_pb2.HOSTED
    return False


@st.composite
def signed_pair_success(draw: st.DrawFn) -> bytes:
    """pair-success blobs with a correct HMAC (we hold the ADV secret) and, unless damaged
    there, a correct account signature around hostile device identities, so verification goes
    all the way."""
    damage = Damage(draw, _PAIR_PARTS)
    identity = adv_pb2.ADVDeviceIdentity()
    for name, value in (
        ("rawId", damage("rawId", 99, st.none() | _UINT32)),
        ("timestamp", damage("timestamp", NOW, st.none() | _UINT64)),
        ("keyIndex", damage("keyIndex", 3, st.none() | _UINT32)),
        ("accountType", damage("accountType", adv_pb2.E2EE, _ENCRYPTION)),
        ("deviceType", damage("deviceType", adv_pb2.E2EE, _ENCRYPTION)),
    ):
        if value is not None:
            setattr(identity, name, value)
    details = identity.SerializeToString()
    details = damage("details bytes", details, mutated(details))
    hosted = damage("prefix", _is_hosted(details), st.booleans())
    signer = damage("signer", PHONE, st.just(_key("someone else")))
    account = adv_pb2.ADVSignedDeviceIdentity()
    if "no details" not in damage.parts:
        account.details = details
    key = damage("signature key", PHONE.public, st.none() | public_keys(PHONE.public))
    if key is not None:
        account.accountSignatureKey = key
    signature: bytes | None = _sign_account(details, hosted, signer)
    signature = damage("signature", signature, st.none() | st.binary(max_size=70))
    if signature is not None:
        account.accountSignature = signature
    if "device signature" in damage.parts:
        account.deviceSignature = draw(st.binary(max_size=70))
    raw = account.SerializeToString()
    raw = damage("account bytes", raw, mutated(raw))
    return _wrap(raw, damage("hmac type", adv_pb2.E2EE, st.just(adv_pb2.HOSTED)))


@FUZZ
@given(mutations_of([pair_success_blob()]) | st.binary(max_size=200))
def test_verify_pair_success_damaged_blobs(blob: bytes) -> None:
    _check_pair_success(blob)


@settings(FUZZ, max_examples=600)
@given(signed_pair_success())
def test_verify_pair_success_authenticated_hostile_identities(blob: bytes) -> None:
    _check_pair_success(blob)


def test_verify_pair_success_accepts_the_valid_blob() -> None:
    account, identity = verify_pair_success(base_creds(), pair_success_blob())
    assert identity.keyIndex == 3 and account.accountSignatureKey == PHONE.public


# -- Signal --------------------------------------------------------------------------------------

ALICE, BOB = _key("alice"), _key("bob")
BOB_SIGNED, BOB_ONE_TIME = _key("bob-signed"), _key("bob-one-time")


@cache
def _bob_bundle() -> PreKeyBundle:
    return PreKeyBundle(
        registration_id=2,
        device_id=1,
        identity_key=BOB.public,
        signed_pre_key_id=5,
        signed_pre_key=BOB_SIGNED.public,
        signed_pre_key_signature=BOB.sign(with_key_type(BOB_SIGNED.public)),
        pre_key_id=9,
        pre_key=BOB_ONE_TIME.public,
    )


@cache
def signal_state() -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(alice's record JSON, bob's record JSON, alice's first pkmsg, bob's answer msg)."""
    alice = build_session(
        None, ALICE, _bob_bundle(), base_key=_key("base"), ratchet_key=_key("ratchet-a"), now=1
    )
    _, pkmsg = encrypt(alice, ALICE, 1, b"first")
    bob, plaintext, used = decrypt_prekey_message(
        None, BOB, 2, BOB_SIGNED, BOB_ONE_TIME, pkmsg, ratchet_key=_key("ratchet-b"), now=2
    )
    assert (plaintext, used) == (b"first", 9)
    _, msg = encrypt(bob, BOB, 2, b"second")
    return alice.to_json(), bob.to_json(), pkmsg, msg


def _record(data: dict[str, Any]) -> SessionRecord:
    return SessionRecord.from_json(json.loads(json.dumps(data)))


def _decrypt_msg_or_signal_error(data: bytes) -> bytes | None:
    """Alice decrypts a msg from bob: a SignalError leaves her record exactly as it was."""
    alice_json, _, _, _ = signal_state()
    record = _record(alice_json)
    try:
        return decrypt_message(record, ALICE, data, ratchet_key=_key("ratchet-c"), now=3)
    except SignalError:
        assert record.to_json() == alice_json
        return None


def _decrypt_pkmsg_or_signal_error(data: bytes, known: bool) -> bytes | None:
    _, bob_json, _, _ = signal_state()
    record = _record(bob_json) if known else None
    try:
        _, plaintext, _ = decrypt_prekey_message(
            record, BOB, 2, BOB_SIGNED, BOB_ONE_TIME, data, ratchet_key=_key("ratchet-d"), now=3
        )
    except SignalError:
        assert record is None or record.to_json() == bob_json
        return None
    return plaintext


@FUZZ
@given(st.data())
def test_signal_damaged_messages(data: st.DataObject) -> None:
    _, _, pkmsg, msg = signal_state()
    with contextlib.suppress(SignalError):
        parse_prekey_message(data.draw(mutations_of([pkmsg]) | st.binary(max_size=120)))
    _decrypt_msg_or_signal_error(data.draw(mutations_of([msg]) | st.binary(max_size=120)))
    damaged = data.draw(mutations_of([pkmsg]))
    _decrypt_pkmsg_or_signal_error(damaged, known=data.draw(st.booleans()))


@st.composite
def whisper_messages(draw: st.DrawFn, ratchet: bytes) -> bytes:
    """WhisperMessages built field by field (each may be missing), with any 8-byte MAC."""
    msg = signal_pb2.WhisperMessage()
    if draw(st.integers(0, 9)):
        msg.ephemeralKey = draw(public_keys(ratchet))
    counter = draw(st.none() | st.sampled_from((0, 1, 2, 2000, 2001, 2002)) | _UINT32)
    if counter is not None:
        msg.counter = counter
    previous = draw(st.none() | st.sampled_from((0, 1, 2000, 2001)) | _UINT32)
    if previous is not None:
        msg.previousCounter = previous
    if draw(st.integers(0, 9)):
        msg.ciphertext = draw(st.binary(max_size=48))
    version = draw(st.sampled_from((0x33, 0x33, 0x33, 0x23, 0x34, 0x43, 0x00, 0xFF)))
    return bytes([version]) + msg.SerializeToString() + draw(st.binary(min_size=8, max_size=8))


@FUZZ
@given(st.data())
def test_signal_structured_hostile_messages(data: st.DataObject) -> None:
    _, bob_json, pkmsg, _ = signal_state()
    bob_ratchet = _record(bob_json).open_entry()
    assert bob_ratchet is not None
    whisper = data.draw(whisper_messages(bob_ratchet.ratchet_key.public))
    _decrypt_msg_or_signal_error(whisper)
    header = parse_prekey_message(pkmsg)
    pre = signal_pb2.PreKeyWhisperMessage()
    for name, value in (
        ("registrationId", _UINT32),
        ("preKeyId", st.sampled_from((0, 9, 10)) | _UINT32),
        ("signedPreKeyId", st.sampled_from((5, 6)) | _UINT32),
        ("baseKey", public_keys(header.base_key)),
        ("identityKey", public_keys(ALICE.public)),
        ("message", st.just(header.message) | mutations_of([header.message]) | st.just(whisper)),
    ):
        drawn = data.draw(st.none() | value)
        if drawn is not None:
            setattr(pre, name, drawn)
    _decrypt_pkmsg_or_signal_error(b"\x33" + pre.SerializeToString(), data.draw(st.booleans()))


@FUZZ
@given(
    st.sampled_from((0, 1, 2, 10, 1999, 2000, 2001)),
    st.sampled_from((0, 1, 2001, 2**32 - 1)) | _UINT32,
    # Whole AES blocks too, so unencrypted bodies reach the padding check.
    st.binary(max_size=70)
    | st.integers(1, 4).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n)),
    st.booleans(),
)
def test_signal_authenticated_hostile_messages(
    skip: int, previous_counter: int, body: bytes, encrypt_body: bool
) -> None:
    """Bob really sends it (right chain key and MAC), but the content is hostile: messages far
    ahead, odd previous counters, ciphertexts that are not AES blocks or have bad padding.
    Whatever decrypts must then be parsed as a Message payload."""
    _, bob_json, _, _ = signal_state()
    entry = _record(bob_json).open_entry()
    assert entry is not None
    ratchet = with_key_type(entry.ratchet_key.public)
    chain = entry.chains[ratchet]
    for _ in range(skip):
        next_sending_key(chain)
    cipher_key, mac_key, iv = message_keys(next_sending_key(chain))
    ciphertext = cbc_encrypt(cipher_key, iv, body) if encrypt_body else body
    signed = encode_whisper(ratchet, chain.counter, previous_counter, ciphertext)
    whisper = signed + mac(mac_key, with_key_type(BOB.public), entry.remote_identity, signed)
    plaintext = _decrypt_msg_or_signal_error(whisper)
    if plaintext is not None:
        # (An unencrypted body may still decrypt: random blocks can end in valid padding.)
        assert plaintext == body or not encrypt_body
        with contextlib.suppress(PayloadError):
            content_of(parse(plaintext))


def test_signal_valid_messages_decrypt() -> None:
    _, _, pkmsg, msg = signal_state()
    assert _decrypt_msg_or_signal_error(msg) == b"second"
    assert _decrypt_pkmsg_or_signal_error(pkmsg, known=False) == b"first"
    _, bob_json, _, _ = signal_state()
    with pytest.raises(DuplicateMessage):  # bob has read it already
        decrypt_prekey_message(_record(bob_json), BOB, 2, None, None, pkmsg)


# -- pre-key bundles -----------------------------------------------------------------------------


def _bundle_user() -> Node:
    return Node("user", {"jid": "15551234567:3@s.whatsapp.net"}, bundle_children(_bob_bundle()))


_CONTENTS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.binary(max_size=70),
    st.sampled_from((3, 4, 32, 33, 64)).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.text(max_size=40),
    st.just([]),
    st.lists(st.builds(Node, st.sampled_from(("id", "value", "signature", "x"))), max_size=3),
)
_JIDS = st.one_of(
    st.sampled_from(("15551234567@s.whatsapp.net", "1:2@lid", "a_1:99@hosted", "x@", "@", ":@s")),
    st.text(max_size=30),
)


@st.composite
def damaged_users(draw: st.DrawFn) -> Node:
    """A <user> bundle with children removed, duplicated, renamed or given other contents."""
    user = _bundle_user()
    if draw(st.booleans()):
        user.attrs["jid"] = draw(_JIDS)
    for _ in range(draw(st.integers(1, 4))):
        nodes = [user]
        for node in list(nodes):
            nodes += node.children()
        target = draw(st.sampled_from(nodes))
        action = draw(st.sampled_from(("remove", "duplicate", "content", "rename")))
        parent = next((n for n in nodes if target in n.children()), None)
        if action == "content" or parent is None:
            target.content = draw(_CONTENTS)
        elif action == "remove":
            assert isinstance(parent.content, list)
            parent.content.remove(target)
        elif action == "duplicate":
            assert isinstance(parent.content, list)
            parent.content.insert(0, Node(target.tag, {}, draw(_CONTENTS)))
        else:
            target.tag = draw(st.sampled_from(("id", "value", "skey", "key", "identity", "zz")))
    return user


def _check_bundle(user: Node) -> None:
    try:
        bundle = parse_bundle(user)
    except BundleError:
        return
    assert len(bundle.identity_key) == len(bundle.signed_pre_key) == 32
    assert len(bundle.signed_pre_key_signature) == 64
    assert bundle.pre_key is None or len(bundle.pre_key) == 32


@FUZZ
@given(damaged_users())
def test_parse_bundle_damaged_nodes(user: Node) -> None:
    _check_bundle(user)


@FUZZ
@given(mutations_of([encode_node(Node("iq", {}, [Node("list", {}, [_bundle_user()])]))]))
def test_parse_bundle_from_damaged_bytes(frame: bytes) -> None:
    node = decode_or_decode_error(frame)
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        stack += current.children()
        if current.tag in ("user", "list", "iq"):
            _check_bundle(current)


def test_parse_bundle_valid() -> None:
    assert parse_bundle(_bundle_user()) == dataclasses.replace(_bob_bundle(), device_id=3)


# -- Message payloads ----------------------------------------------------------------------------


@cache
def _payloads() -> list[bytes]:
    text = text_message("hello there, a text long enough to have a few fields")
    text.messageContextInfo.messageSecret = bytes(range(32))  # fixed: the same seeds every run
    reaction = Message()
    reaction.reactionMessage.text = "+1"
    reaction.reactionMessage.key.id = "3EB0AB12CD34EF56"
    plain = Message(conversation="hi")
    wrapped = device_sent("15551234567@s.whatsapp.net", text)
    # Padded as pad() does, with a fixed length so the seeds do not vary.
    return [m.SerializeToString() + b"\x04" * 4 for m in (text, reaction, plain, wrapped)]


@FUZZ
@given(mutations_of(_payloads()) | st.binary(max_size=120))
def test_parse_message_payloads(plaintext: bytes) -> None:
    try:
        message = parse(plaintext)
    except PayloadError:
        return
    content_of(message)


def test_parse_message_payloads_valid() -> None:
    assert content_of(parse(pad(Message(conversation="hi").SerializeToString()))).text == "hi"
    for payload in _payloads():
        parse(payload)


# -- Baileys auth folders ------------------------------------------------------------------------

FOLDER_ERRORS = (AuthFolderError, StoreError)
# What Creds.from_json may raise for bad data (its documented contract, which the callers
# catch: read_folder turns each into AuthFolderError, PostgresAuthStore into StoreError).
CREDS_ERRORS = (KeyError, ValueError, TypeError)
SEALER = Sealer([("k1", hashlib.sha256(b"seal").digest())])


@cache
def linked_creds() -> Creds:
    creds = base_creds()
    account, _ = verify_pair_success(creds, pair_success_blob())
    return dataclasses.replace(
        creds,
        me=Me("15551234567:3@s.whatsapp.net", "98765432109876:3@lid", "Fuzz"),
        account=account,
        signal_identities=[SignalIdentity("98765432109876:0@lid", 0, with_key_type(PHONE.public))],
        platform="android",
        routing_info=b"\x08\x02\x08\x05",
        last_prop_hash="3gPUJk",
        registered=True,
    )


@cache
def folder_files() -> dict[str, bytes]:
    """A complete folder as Baileys writes it: creds and a few keys of several categories."""
    alice_json, _, _, _ = signal_state()
    values: dict[str, Any] = {
        "creds.json": linked_creds().to_json(),
        "pre-key-9.json": {"private": BOB_ONE_TIME.private, "public": BOB_ONE_TIME.public},
        "session-15551234567.0.json": alice_json,
        "app-state-sync-key-AAAAAGx1.json": {"keyData": b"k" * 32, "timestamp": "1700000000"},
        "lid-mapping-15551234567.json": "98765432109876",
        "device-list-15551234567.json": ["0", "3"],
        "sender-key-memory-120363@g.us.json": {"15551234567:3@s.whatsapp.net": True},
    }
    return {name: js_json_dumps(value).encode() for name, value in values.items()}


@contextlib.contextmanager
def folder(files: dict[str, bytes | None]) -> Iterator[Path]:
    """A temporary folder with these files (None: a directory of that name)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "session-fuzz"
        path.mkdir()
        for name, data in files.items():
            if data is None:
                (path / name).mkdir()
            else:
                (path / name).write_bytes(data)
        yield path


def _read_or_folder_error(path: Path, sealer: Sealer | None = None) -> FolderState | None:
    try:
        state = read_folder(path, sealer=sealer)
    except FOLDER_ERRORS:
        return None
    assert isinstance(state.creds, Creds) and isinstance(state.creds_json, dict)
    return state


def _buffer_objects(value: object) -> bool:
    """Whether a revived value still holds an object typed "Buffer" (its data not a string)."""
    if isinstance(value, dict):
        return value.get("type") == "Buffer" or any(_buffer_objects(v) for v in value.values())
    if isinstance(value, list):
        return any(_buffer_objects(v) for v in value)
    return False


def _rewrites(state: FolderState) -> None:
    """What read_folder accepted, write_folder writes back and read_folder reads again.

    Not for objects typed "Buffer" that were not revived: BufferJSON's replacer writes them as
    Buffers, which read back as bytes (as with Baileys), and those without bytes cannot be
    written at all (test_read_folder_refuses_what_it_cannot_write_back).
    """
    if _buffer_objects(state.creds_json) or _buffer_objects(state.keys):
        return
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp) / "copy"
        write_folder(again, state.creds_json, state.keys)
        reread = read_folder(again)
    # Byte for byte as Baileys would write it (numbers beyond a double are null both times).
    assert js_json_dumps(reread.creds_json) == js_json_dumps(state.creds_json)
    assert js_json_dumps(reread.keys) == js_json_dumps(state.keys)


_FILE_NAMES = st.one_of(
    st.sampled_from(sorted(folder_files())),
    st.builds(
        "{}-{}.json".format,
        st.sampled_from(("pre-key", "session", "sender-key", "identity-key", "tctoken")),
        st.text(st.characters(exclude_characters="/\0", codec="utf-8"), min_size=1, max_size=12),
    ),
    st.text(st.characters(exclude_characters="/\0", codec="utf-8"), min_size=1, max_size=20),
    # Names Baileys never writes: not UTF-8 on disk (surrogate escapes, as os.scandir gives
    # them), or an id that fixFileName would have changed.
    st.sampled_from(
        (
            "pre-key-\udcff.json",
            "session-\udcc3(.json",
            "creds.json\udc80",
            "pre-key-:.json",
            "session-1555:2.0.json",
        )
    ),
).filter(
    lambda name: name not in (".", "..") and len(name.encode("utf-8", "surrogateescape")) <= 255
)


@FUZZ
@given(st.data())
def test_read_folder_damaged_files(data: st.DataObject) -> None:
    files: dict[str, bytes | None] = dict(folder_files())
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(_FILE_NAMES)
        seed = files.get(name) or data.draw(st.sampled_from(sorted(folder_files().values())))
        files[name] = data.draw(
            mutated(seed) | st.binary(max_size=60) | st.none() | st.just(b"null")
        )
    if data.draw(st.integers(0, 5)) == 0:
        files.pop("creds.json", None)
    with folder(files) as path:
        state = _read_or_folder_error(path)
    if state is not None:
        _rewrites(state)


_JSON_LEAVES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from((2**32, 2**53 + 1, 2**64, 10**400, -(10**400), -1)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.binary(max_size=40).map(lambda b: {"type": "Buffer", "data": b64encode(b)}),
    # Copies: damaged_creds edits what it drew, and a strategy's constants must stay constant.
    st.sampled_from(
        (
            {"0": 1, "1": 300},
            {"type": "Buffer", "data": [1, 2]},
            {"1": 2.5},
            {"wahttp:sealed": 1, "kid": "k1"},
            {"wahttp:sealed": True},
        )
    ).map(copy.deepcopy),
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


# Numbers JSON can hold that a Python int() or a protocol field cannot take as they are.
_HOSTILE_NUMBERS = st.sampled_from(
    (10**400, -(10**400), 2**64, 2**53 + 1, -1, 1.5e300, 0.5, -0.0, True, "12", "x", None)
)
# Where creds.json keeps numbers (paths into the object).
_NUMBER_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("registrationId",),
    ("nextPreKeyId",),
    ("firstUnuploadedPreKeyId",),
    ("accountSyncCounter",),
    ("signedPreKey", "keyId"),
    ("signalIdentities", 0, "identifier", "deviceId"),
)


def _set_path(creds: Any, path: tuple[str | int, ...], value: object) -> None:
    *parents, last = path
    node = creds
    for part in parents:
        node = node[part]
    node[last] = value


@st.composite
def damaged_creds(draw: st.DrawFn) -> Any:
    """creds.json with values replaced or removed at any depth (as JSON, Buffers revived)."""
    creds: Any = js_json_loads(folder_files()["creds.json"].decode())
    if draw(st.booleans()):
        _set_path(creds, draw(st.sampled_from(_NUMBER_PATHS)), draw(_HOSTILE_NUMBERS))
    for _ in range(draw(st.integers(1, 3))):
        node = creds
        while isinstance(node, dict) and node and draw(st.integers(0, 2)):
            child = node[draw(st.sampled_from(sorted(node)))]
            if not isinstance(child, dict) or not child:
                break
            node = child
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if draw(st.integers(0, 3)) == 0:
                del node[key]
            else:
                node[key] = draw(_JSON)
    if draw(st.integers(0, 9)) == 0:
        creds = draw(_JSON)
    return creds


@FUZZ
@given(damaged_creds())
def test_read_folder_damaged_creds_json(creds: Any) -> None:
    files: dict[str, bytes | None] = dict(folder_files())
    # Python writes huge integers as digits, which JavaScript (and js_json_loads) reads as
    # Infinity or a rounded double: exactly the hostile numbers we want in the file.
    files["creds.json"] = json.dumps(creds, default=bytes_json).encode()
    with folder(files) as path:
        state = _read_or_folder_error(path)
    if state is not None:
        _rewrites(state)


def bytes_json(value: object) -> object:
    if isinstance(value, bytes):
        return {"type": "Buffer", "data": b64encode(value)}
    raise TypeError(type(value).__name__)


@FUZZ
@given(damaged_creds())
def test_creds_from_json_raises_only_data_errors(creds: Any) -> None:
    """Creds.from_json on a revived creds.json object: bad data is only Key/Value/TypeError."""
    if not isinstance(creds, dict):
        return
    revived = js_json_loads(json.dumps(creds, default=bytes_json))
    with contextlib.suppress(*CREDS_ERRORS):
        Creds.from_json(revived)


@FUZZ
@given(st.sampled_from(_NUMBER_PATHS), _HOSTILE_NUMBERS)
def test_read_folder_hostile_numbers_in_creds(path: tuple[str | int, ...], value: object) -> None:
    """Every number field of creds.json against every odd number (all 72 pairs): refused as
    data errors, or (a whole number written as 1e0 style) taken within the field's range, so a
    later use (key ids as 3 bytes, the registration id as 4) cannot fail."""
    creds = js_json_loads(folder_files()["creds.json"].decode())
    _set_path(creds, path, value)
    text = json.dumps(creds, default=bytes_json)
    with contextlib.suppress(*CREDS_ERRORS):
        parsed = Creds.from_json(js_json_loads(text))
        parsed.registration_id.to_bytes(4, "big")
        parsed.signed_pre_key.key_id.to_bytes(3, "big")
        (parsed.next_pre_key_id - 1).to_bytes(3, "big")
        (parsed.first_unuploaded_pre_key_id - 1).to_bytes(3, "big")
        assert all(0 <= i.device_id <= 0xFF for i in parsed.signal_identities)
        assert 0 <= parsed.account_sync_counter < 2**53
        assert not isinstance(value, bool | str) and value is not None
    files: dict[str, bytes | None] = {**folder_files(), "creds.json": text.encode()}
    with folder(files) as tmp:
        state = _read_or_folder_error(tmp)
    if state is not None:
        _rewrites(state)


@FEW
@given(st.data())
def test_read_folder_sealed_files(data: st.DataObject) -> None:
    """Sealed folders: damaged envelopes, sealed garbage, the wrong key or no key at all."""
    files: dict[str, bytes | None] = {}
    for name, raw in folder_files().items():
        text = raw
        if data.draw(st.integers(0, 3)) == 0:
            text = data.draw(mutated(raw))
        split = split_file_name(name)
        context = SealContext("session-fuzz", *split) if split else SealContext("session-fuzz")
        files[name] = js_json_dumps(SEALER.seal(text, context)).encode()
        if data.draw(st.integers(0, 4)) == 0:
            files[name] = data.draw(mutated(files[name] or b""))
    sealer = data.draw(st.sampled_from((SEALER, None, Sealer([("k1", bytes(32))]))))
    with folder(files) as path:
        _read_or_folder_error(path, sealer)


def test_read_folder_valid_and_sealed() -> None:
    with folder(dict(folder_files())) as path:
        state = read_folder(path)
        assert state.creds.to_json() == linked_creds().to_json()
        assert set(state.keys) >= {"pre-key", "session", "lid-mapping"}
        _rewrites(state)


@pytest.mark.parametrize(
    "name", ["pre-key-\udcff.json", "session-\udcc3(.json", "pre-key-:.json", "session-1:2.0.json"]
)
def test_read_folder_skips_names_baileys_never_writes(name: str) -> None:
    """Found by fuzzing: such names were read as keys whose ids no store and no folder can
    hold (write_folder refused them, PostgreSQL failed on the lone surrogates)."""
    with folder(dict(folder_files())) as path:
        before = read_folder(path)
    files: dict[str, bytes | None] = {**folder_files(), name: folder_files()["pre-key-9.json"]}
    with folder(files) as path:
        state = read_folder(path)
    assert [skipped.name for skipped in state.skipped] == [name]
    assert state.keys == before.keys
    _rewrites(state)


# Found by fuzzing: BufferJSON objects without their bytes read fine (as Baileys reads them) but
# cannot be written again (Baileys' replacer throws on them too): an import read the folder and
# then failed writing the service's mirror with a ValueError. read_folder now refuses them with
# an AuthFolderError naming the file.
@pytest.mark.parametrize(
    "value", ['{"type":"Buffer"}', '{"type":"Buffer","data":5}', '{"type":"Buffer","data":[1,"x"]}']
)
@pytest.mark.parametrize("name", ["lid-mapping-15551234567.json", "creds.json"])
def test_read_folder_refuses_what_it_cannot_write_back(name: str, value: str) -> None:
    files: dict[str, bytes | None] = dict(folder_files())
    if name == "creds.json":
        files[name] = folder_files()[name][:-1] + b',"extra":' + value.encode() + b"}"
    else:
        files[name] = value.encode()
    with folder(files) as path, pytest.raises(AuthFolderError, match=name):
        read_folder(path)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "socket", "directory"])
@pytest.mark.parametrize("name", ["creds.json", "pre-key-9.json"])
def test_read_folder_odd_entries(kind: str, name: str) -> None:
    files: dict[str, bytes | None] = dict(folder_files())
    del files[name]
    with folder(files) as path:
        target = path / name
        if kind == "symlink":
            target.symlink_to(path / "session-15551234567.0.json")
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "socket":
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(str(target))
        else:
            target.mkdir()
        _read_or_folder_error(path)
