"""Noise handshake (both roles) and transport cipher: round trips, a Baileys vector, failures."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wahttp.wa import crypto
from wahttp.wa.certs import issue_cert_chain, verify_cert_chain
from wahttp.wa.crypto import KeyPair
from wahttp.wa.errors import CipherError, HandshakeError
from wahttp.wa.noise import (
    PROTOCOL_NAME,
    WA_HEADER,
    ClientHandshake,
    ServerHandshake,
    SymmetricState,
    TransportCipher,
    encode_frame,
    intro,
)
from wahttp.wa.proto.handshake_pb2 import HandshakeMessage

# Frozen output of `node tests/interop/noise_vector.js`: Baileys 7.0.0-rc14's makeNoiseHandler as
# the client against a responder written with node:crypto only (tests/interop/test_noise_interop.py
# reruns it). Private keys are clamp(sha256("wahttp noise vector: " + label)).
V_CLIENT_EPHEMERAL = "8821f90f5c9b5d9b891cda4114a307059895d00be65725712e458ff608955067"
V_CLIENT_NOISE = "2060d84173e9f83e657217d99454fe616dedce029ce85a2ba4a1c9548a07c077"
V_SERVER_EPHEMERAL = "2045b35188dd71265300e3539248cbd9bac3ce247d4372f11a26838b40769a76"
V_SERVER_STATIC = "5832e6bcb8abeb75895ea964ae8b1d3cebdf56440397d20e7662bb10a9e47643"
V_ROOT_PUBLIC = "9b58da8e4347abaf35fca5946aeccd81337ebecf5966dddb1b8c0e4e19854049"
V_CERT_CHAIN = (
    "0a760a32080810071a20b2d97d3448dd6ca85e94a25221f350f6d9fd399ea250167732bacb8862ad2806"
    "2080e2cfaa062880ae99a40f1240dd361b2b2eceb084299f2f33c5e75be715ed68cdacec7d41af252bf6"
    "ce24390a133ecc1cc8de0a97324751c177492c049ab0e01a94eb39e70da9a38e3025850f12760a320807"
    "10001a205e8008419f86dca33ffc20c3ab2c4c1b024a8a83fa502ce1d90ad24ba6336c2d2080e2cfaa06"
    "2880ae99a40f1240287a0b52ec36f06a48bbef727fb87c3802c7ce69b0c339ad56e8709a0826c1bd8e47"
    "8fc1eb5f12cdae1a32a8102a8272794707bdfe00a37353338996405cae0f"
)
V_CLIENT_PAYLOAD = b"wahttp noise vector client payload"
V_CLIENT_PLAIN = "00f80a190855110304291657f801f80156"
V_SERVER_PLAIN = "00f8034c1aff051700000000"

V_FIRST_BYTES = (
    "5741060300002412220a20103424f7be64b5d2b651c8123b037045c67bd6f5c9feed542dc9ee78a67de45c"
)
V_HELLO = "12220a20103424f7be64b5d2b651c8123b037045c67bd6f5c9feed542dc9ee78a67de45c"
V_SERVER_HELLO = (
    "1ad7020a2077f3db3300d2edf46dbb895a85900e9630d8ac927ac6d940b4cc7f18468bef2312300a73aab073"
    "05cdc224578059cb45b595837921fcc6ea0e54e504ccaf7e15f1a2af45f1e0b7f4a30b704c0718107d79821a"
    "8002836fcea03003627ad1042a5e553a291eca1b337973fc3fb33bf433aaafa96af4145a267130d9cb1ba037"
    "9034e563dd7bbb56ac89909e42b6e8ffb70157f6cffd4ff83dfde98c13266e798240dac1efa4acd43960c1a2"
    "e6d9ba16a1ae8f062b95f7c921e5bf7021af4b625d33587381a2091c05aa1993d067b3d49ddccaabe719584c"
    "9dadfbc517762ac6d6cdd46e53db26aa96679bb848d80aa1a6ce1c6fde0ded496a6507e1fe91473272936542"
    "ccc3504fc40665310a0d65e085ef869ae9ddaf4630a24acb03a83563fc18ba46c9201c139f4d6782b9c21ee1"
    "41e8f4e06f6c7d9db5f02ffc9cab752052bc58ddb1cc1e643a35fdd28392d5474f769f36d2c3"
)
V_FINISH = (
    "22660a30504a59e4308ad21ac7767cab350ff3d8cdaea1ce553a2578b5bba7460dec796626246014fafc929c"
    "24cd4b21d4c97dd212322e496d20d94587fddc2fb9f8faa5d193c8f5d0d37b58320e8673876d80425246c83a"
    "d1d6db6ba84ff50e03dd5c2a6da68ac1"
)
V_CLIENT_FRAME = "0000214b4a97e2b0c4a50496e86d453a033922bc11bdb6046189357e393997d429cdd1b5"
V_SERVER_FRAME = "00001c180f89026805c9be81ee5cbe3ef322667d7600ab5b02357c025f6ff8"


def _key(hex_private: str) -> KeyPair:
    return KeyPair.from_private(bytes.fromhex(hex_private))


def _vector_client() -> ClientHandshake:
    return ClientHandshake(_key(V_CLIENT_EPHEMERAL), _key(V_CLIENT_NOISE))


def _vector_server() -> ServerHandshake:
    cert = bytes.fromhex(V_CERT_CHAIN)
    return ServerHandshake(_key(V_SERVER_EPHEMERAL), _key(V_SERVER_STATIC), cert)


# --- known answer (Baileys) ---------------------------------------------------------------------


def test_client_matches_baileys_vector() -> None:
    client = _vector_client()
    hello = client.hello()
    assert hello.hex() == V_HELLO
    assert (intro() + encode_frame(hello)).hex() == V_FIRST_BYTES
    result = client.read_server_hello(bytes.fromhex(V_SERVER_HELLO))
    assert result.server_static == _key(V_SERVER_STATIC).public
    assert result.cert_chain.hex() == V_CERT_CHAIN
    assert client.finish(V_CLIENT_PAYLOAD).hex() == V_FINISH
    cipher = client.transport()
    assert encode_frame(cipher.encrypt(bytes.fromhex(V_CLIENT_PLAIN))).hex() == V_CLIENT_FRAME
    assert cipher.decrypt(bytes.fromhex(V_SERVER_FRAME)[3:]).hex() == V_SERVER_PLAIN


def test_server_matches_baileys_vector() -> None:
    server = _vector_server()
    server.read_hello(bytes.fromhex(V_HELLO))
    assert server.server_hello().hex() == V_SERVER_HELLO
    result = server.read_finish(bytes.fromhex(V_FINISH))
    assert result.client_static == _key(V_CLIENT_NOISE).public
    assert result.client_payload == V_CLIENT_PAYLOAD
    cipher = server.transport()
    assert encode_frame(cipher.encrypt(bytes.fromhex(V_SERVER_PLAIN))).hex() == V_SERVER_FRAME
    assert cipher.decrypt(bytes.fromhex(V_CLIENT_FRAME)[3:]).hex() == V_CLIENT_PLAIN


def test_vector_cert_chain_verifies() -> None:
    chain = bytes.fromhex(V_CERT_CHAIN)
    static = _key(V_SERVER_STATIC).public
    verify_cert_chain(chain, static, bytes.fromhex(V_ROOT_PUBLIC), now=1_800_000_000)


# --- round trips --------------------------------------------------------------------------------


def _handshake(
    payload: bytes = b"client payload",
) -> tuple[TransportCipher, TransportCipher, KeyPair, KeyPair]:
    """Run a full handshake with fresh keys and a verified chain; return both ciphers."""
    root, static, noise = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    chain = issue_cert_chain(root, static.public)
    client = ClientHandshake(KeyPair.generate(), noise)
    server = ServerHandshake(KeyPair.generate(), static, chain)
    server.read_hello(client.hello())
    hello = client.read_server_hello(server.server_hello())
    verify_cert_chain(hello.cert_chain, hello.server_static, root.public)
    finished = server.read_finish(client.finish(payload))
    assert finished.client_static == noise.public
    assert finished.client_payload == payload
    return client.transport(), server.transport(), static, noise


def test_handshake_and_transport_round_trip() -> None:
    client, server, _, _ = _handshake()
    for i in range(50):
        up = f"client frame {i}".encode() * i
        assert server.decrypt(client.encrypt(up)) == up
        down = f"server frame {i}".encode()
        assert client.decrypt(server.encrypt(down)) == down
    assert client.write_counter == server.read_counter == 50


def test_directions_are_independent() -> None:
    client, server, _, _ = _handshake()
    ups = [client.encrypt(bytes([i])) for i in range(5)]
    downs = [server.encrypt(bytes([i])) for i in range(3)]
    assert [client.decrypt(d) for d in downs] == [bytes([i]) for i in range(3)]
    assert [server.decrypt(u) for u in ups] == [bytes([i]) for i in range(5)]


def test_empty_payloads() -> None:
    client, server, _, _ = _handshake(payload=b"")
    assert server.decrypt(client.encrypt(b"")) == b""


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_transport_round_trips_any_bytes(messages: list[bytes]) -> None:
    client, server, _, _ = _handshake()
    assert [server.decrypt(client.encrypt(m)) for m in messages] == messages


def test_symmetric_state_starts_from_protocol_name() -> None:
    assert len(PROTOCOL_NAME) == 32
    state = SymmetricState()
    assert state.handshake_hash == PROTOCOL_NAME
    state.mix_hash(WA_HEADER)
    assert state.handshake_hash == crypto.sha256(PROTOCOL_NAME + WA_HEADER)


def test_handshake_counter_is_shared_by_both_directions() -> None:
    a, b = SymmetricState(), SymmetricState()
    a.mix_key(b"k")
    b.mix_key(b"k")
    first = a.encrypt_and_hash(b"one")
    assert b.decrypt_and_hash(first) == b"one"
    # After one decrypt, b's next encryption uses nonce 1, exactly as a's next decryption expects.
    assert a.decrypt_and_hash(b.encrypt_and_hash(b"two")) == b"two"


# --- failures -----------------------------------------------------------------------------------


def _tamper(message: bytes, part: str, field: str) -> bytes:
    msg = HandshakeMessage.FromString(message)
    sub = getattr(msg, part)
    value = bytearray(getattr(sub, field))
    value[len(value) // 2] ^= 0x01
    setattr(sub, field, bytes(value))
    return msg.SerializeToString()


@pytest.mark.parametrize("field", ["static", "payload"])
def test_tampered_server_hello_fails(field: str) -> None:
    client = _vector_client()
    client.hello()
    with pytest.raises(HandshakeError):
        client.read_server_hello(_tamper(bytes.fromhex(V_SERVER_HELLO), "serverHello", field))


@pytest.mark.parametrize("field", ["static", "payload"])
def test_tampered_client_finish_fails(field: str) -> None:
    server = _vector_server()
    server.read_hello(bytes.fromhex(V_HELLO))
    server.server_hello()
    with pytest.raises(HandshakeError):
        server.read_finish(_tamper(bytes.fromhex(V_FINISH), "clientFinish", field))


def test_swapped_server_ephemeral_fails() -> None:
    client = _vector_client()
    client.hello()
    msg = HandshakeMessage.FromString(bytes.fromhex(V_SERVER_HELLO))
    msg.serverHello.ephemeral = KeyPair.generate().public
    with pytest.raises(HandshakeError):
        client.read_server_hello(msg.SerializeToString())


def test_different_prologue_fails() -> None:
    client = ClientHandshake(_key(V_CLIENT_EPHEMERAL), _key(V_CLIENT_NOISE), header=b"WA\x06\x02")
    client.hello()
    with pytest.raises(HandshakeError):
        client.read_server_hello(bytes.fromhex(V_SERVER_HELLO))


def test_wrong_client_key_is_caught_by_server() -> None:
    # A client that claims another noise key cannot complete the es/se mix.
    server = _vector_server()
    server.read_hello(bytes.fromhex(V_HELLO))
    hello = server.server_hello()
    impostor = ClientHandshake(_key(V_CLIENT_EPHEMERAL), KeyPair.generate())
    impostor.hello()
    impostor.read_server_hello(hello)
    finish = HandshakeMessage.FromString(impostor.finish(V_CLIENT_PAYLOAD))
    genuine = HandshakeMessage.FromString(bytes.fromhex(V_FINISH))
    finish.clientFinish.static = genuine.clientFinish.static
    with pytest.raises(HandshakeError):
        server.read_finish(finish.SerializeToString())


def _server_hello_with(**fields: bytes) -> bytes:
    msg = HandshakeMessage.FromString(bytes.fromhex(V_SERVER_HELLO))
    hello = msg.serverHello
    for name, value in fields.items():
        setattr(hello, name, value)
    return msg.SerializeToString()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xff\xff", id="garbage"),
        pytest.param(bytes.fromhex(V_HELLO), id="client-hello"),
        pytest.param(_server_hello_with(ephemeral=b"\x01" * 31), id="short-ephemeral"),
        pytest.param(_server_hello_with(ephemeral=b"\x05" + b"\x09" * 32), id="typed-ephemeral"),
        pytest.param(_server_hello_with(ephemeral=bytes(32)), id="low-order-ephemeral"),
        pytest.param(_server_hello_with(static=b""), id="empty-static"),
        pytest.param(_server_hello_with(payload=b"x"), id="short-payload"),
    ],
)
def test_bad_server_hello_raises_handshake_error(data: bytes) -> None:
    client = _vector_client()
    client.hello()
    with pytest.raises(HandshakeError):
        client.read_server_hello(data)


def test_missing_server_hello_fields() -> None:
    for missing in ("static", "payload", "ephemeral"):
        msg = HandshakeMessage.FromString(bytes.fromhex(V_SERVER_HELLO))
        msg.serverHello.ClearField(missing)
        client = _vector_client()
        client.hello()
        with pytest.raises(HandshakeError):
            client.read_server_hello(msg.SerializeToString())


def test_server_rejects_bad_client_hello() -> None:
    for data in (b"\x12\x02\x0a\x00", b"\x12\x00", b"garbage", b""):
        with pytest.raises(HandshakeError):
            _vector_server().read_hello(data)


def test_low_order_client_ephemeral_fails_at_server_hello() -> None:
    server = _vector_server()
    server.read_hello(HandshakeMessage(clientHello={"ephemeral": bytes(32)}).SerializeToString())
    with pytest.raises(HandshakeError):
        server.server_hello()


def test_client_steps_out_of_order() -> None:
    client = _vector_client()
    with pytest.raises(HandshakeError):
        client.read_server_hello(bytes.fromhex(V_SERVER_HELLO))
    client = _vector_client()
    with pytest.raises(HandshakeError):
        client.finish(b"")
    client = _vector_client()
    with pytest.raises(HandshakeError):
        client.transport()
    client = _vector_client()
    client.hello()
    with pytest.raises(HandshakeError):
        client.hello()


def test_server_steps_out_of_order() -> None:
    server = _vector_server()
    with pytest.raises(HandshakeError):
        server.server_hello()
    server = _vector_server()
    with pytest.raises(HandshakeError):
        server.read_finish(bytes.fromhex(V_FINISH))
    server = _vector_server()
    server.read_hello(bytes.fromhex(V_HELLO))
    with pytest.raises(HandshakeError):
        server.transport()


def test_transport_only_once() -> None:
    client = _vector_client()
    client.hello()
    client.read_server_hello(bytes.fromhex(V_SERVER_HELLO))
    client.finish(V_CLIENT_PAYLOAD)
    client.transport()
    with pytest.raises(HandshakeError):
        client.transport()


def test_failed_step_poisons_the_handshake() -> None:
    client = _vector_client()
    client.hello()
    with pytest.raises(HandshakeError):
        client.read_server_hello(b"garbage")
    with pytest.raises(HandshakeError):
        client.read_server_hello(bytes.fromhex(V_SERVER_HELLO))
    with pytest.raises(HandshakeError):
        client.finish(b"")


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_garbage_only_raises_handshake_error(data: bytes) -> None:
    client = _vector_client()
    client.hello()
    with pytest.raises(HandshakeError):
        client.read_server_hello(data)
    server = _vector_server()
    server.read_hello(bytes.fromhex(V_HELLO))
    server.server_hello()
    with pytest.raises(HandshakeError):
        server.read_finish(data)
    # A hello is only hashed, so garbage may parse as a valid one; it must never raise otherwise.
    with contextlib.suppress(HandshakeError):
        _vector_server().read_hello(data)


def test_replayed_transport_frame() -> None:
    client, server, _, _ = _handshake()
    frame = client.encrypt(b"hello")
    assert server.decrypt(frame) == b"hello"
    with pytest.raises(CipherError):
        server.decrypt(frame)


def test_tampered_transport_frame_leaves_counter() -> None:
    client, server, _, _ = _handshake()
    frame = bytearray(client.encrypt(b"hello"))
    frame[0] ^= 0x80
    with pytest.raises(CipherError):
        server.decrypt(bytes(frame))
    frame[0] ^= 0x80
    assert server.decrypt(bytes(frame)) == b"hello"


def test_reordered_and_short_transport_frames() -> None:
    client, server, _, _ = _handshake()
    first, second = client.encrypt(b"1"), client.encrypt(b"2")
    with pytest.raises(CipherError):
        server.decrypt(second)
    with pytest.raises(CipherError):
        server.decrypt(b"short")
    assert server.decrypt(first) == b"1"


def test_frame_from_own_direction_fails() -> None:
    client, _, _, _ = _handshake()
    with pytest.raises(CipherError):
        client.decrypt(client.encrypt(b"loop"))


def test_transport_rejects_bad_keys() -> None:
    with pytest.raises(ValueError):
        TransportCipher(b"k" * 16, b"k" * 32)


def test_reprs_hide_key_material() -> None:
    client = _vector_client()
    state = SymmetricState()
    cipher = TransportCipher(b"\xaa" * 32, b"\xbb" * 32)
    text = repr(client) + repr(state) + repr(cipher) + repr(_key(V_CLIENT_NOISE))
    assert V_CLIENT_EPHEMERAL not in text
    assert V_CLIENT_NOISE[:16] not in text
    assert "aaaa" not in text
    assert "bbbb" not in text
