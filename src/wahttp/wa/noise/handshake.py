"""Both roles of WhatsApp's Noise XX handshake as pure state machines: bytes in, bytes out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from wahttp.wa.crypto import KEY_SIZE, KeyPair
from wahttp.wa.errors import HandshakeError
from wahttp.wa.noise.frames import WA_HEADER
from wahttp.wa.noise.state import SymmetricState
from wahttp.wa.noise.transport import TransportCipher
from wahttp.wa.proto.handshake_pb2 import HandshakeMessage


class _Step(enum.Enum):
    """Where a handshake is; each public method runs in exactly one of these."""

    HELLO = "hello"
    READ_SERVER_HELLO = "read_server_hello"
    READ_HELLO = "read_hello"
    SERVER_HELLO = "server_hello"
    FINISH = "finish"
    READ_FINISH = "read_finish"
    TRANSPORT = "transport"
    DONE = "done"
    # A step raised: the transcript is unusable, so every later call raises too.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ServerHelloResult:
    """What the client learns from the server hello; the caller verifies `cert_chain`."""

    server_static: bytes
    cert_chain: bytes


@dataclass(frozen=True, slots=True)
class ClientFinishResult:
    """What the server learns from the client finish: its noise key and its ClientPayload."""

    client_static: bytes
    client_payload: bytes = field(repr=False)


class _Handshake:
    """The step bookkeeping and checks both roles share."""

    __slots__ = ("_state", "_step")

    def __init__(self, header: bytes, first: _Step) -> None:
        self._state = SymmetricState()
        # The prologue: only the 4-byte header, never the ED routing prefix.
        self._state.mix_hash(header)
        self._step = first

    def __repr__(self) -> str:
        return f"{type(self).__name__}(step={self._step.value})"

    def _enter(self, step: _Step) -> None:
        if self._step is not step:
            raise HandshakeError(f"handshake step {step.value} called at step {self._step.value}")
        # Any failure inside the step leaves the handshake failed.
        self._step = _Step.FAILED

    def _mix_dh(self, own: KeyPair, peer_public: bytes) -> None:
        try:
            shared = own.dh(peer_public)
        except ValueError:
            raise HandshakeError("peer sent an invalid or low-order public key") from None
        self._state.mix_key(shared)

    def _split(self, step: _Step) -> tuple[bytes, bytes]:
        self._enter(step)
        keys = self._state.split()
        self._step = _Step.DONE
        return keys


def _parse(data: bytes) -> HandshakeMessage:
    try:
        return HandshakeMessage.FromString(data)
    except (DecodeError, ValueError, TypeError) as exc:
        raise HandshakeError("malformed handshake message") from exc


def _public_key(value: bytes, what: str) -> bytes:
    if len(value) != KEY_SIZE:
        raise HandshakeError(f"{what} has {len(value)} bytes, expected {KEY_SIZE}")
    return value


class ClientHandshake(_Handshake):
    """The initiator: hello() -> read_server_hello() -> finish() -> transport()."""

    __slots__ = ("_ephemeral", "_noise_key", "_server_ephemeral")

    def __init__(self, ephemeral: KeyPair, noise_key: KeyPair, header: bytes = WA_HEADER) -> None:
        super().__init__(header, _Step.HELLO)
        self._ephemeral = ephemeral
        self._noise_key = noise_key
        self._server_ephemeral = b""
        self._state.mix_hash(ephemeral.public)

    def hello(self) -> bytes:
        """The serialized HandshakeMessage carrying our ephemeral key (the first frame)."""
        self._enter(_Step.HELLO)
        hello = HandshakeMessage.ClientHello(ephemeral=self._ephemeral.public)
        self._step = _Step.READ_SERVER_HELLO
        return HandshakeMessage(clientHello=hello).SerializeToString()

    def read_server_hello(self, data: bytes) -> ServerHelloResult:
        """Process the server hello; the returned certificate chain is not yet verified."""
        self._enter(_Step.READ_SERVER_HELLO)
        msg = _parse(data)
        hello = msg.serverHello
        if not (msg.HasField("serverHello") and hello.HasField("static")):
            raise HandshakeError("server hello or its encrypted static key is missing")
        if not hello.HasField("payload"):
            raise HandshakeError("server hello has no certificate payload")
        server_ephemeral = _public_key(hello.ephemeral, "server ephemeral key")
        self._state.mix_hash(server_ephemeral)
        self._mix_dh(self._ephemeral, server_ephemeral)
        static = self._state.decrypt_and_hash(hello.static)
        server_static = _public_key(static, "server static key")
        self._mix_dh(self._ephemeral, server_static)
        cert_chain = self._state.decrypt_and_hash(hello.payload)
        self._server_ephemeral = server_ephemeral
        self._step = _Step.FINISH
        return ServerHelloResult(server_static=server_static, cert_chain=cert_chain)

    def finish(self, client_payload: bytes) -> bytes:
        """The serialized clientFinish: our noise key and the ClientPayload, both encrypted."""
        self._enter(_Step.FINISH)
        static = self._state.encrypt_and_hash(self._noise_key.public)
        self._mix_dh(self._noise_key, self._server_ephemeral)
        payload = self._state.encrypt_and_hash(client_payload)
        finish = HandshakeMessage.ClientFinish(static=static, payload=payload)
        self._step = _Step.TRANSPORT
        return HandshakeMessage(clientFinish=finish).SerializeToString()

    def transport(self) -> TransportCipher:
        """The transport cipher; callable once, since a second copy would reuse nonces."""
        write_key, read_key = self._split(_Step.TRANSPORT)
        return TransportCipher(write_key=write_key, read_key=read_key)


class ServerHandshake(_Handshake):
    """The responder: read_hello() -> server_hello() -> read_finish() -> transport()."""

    __slots__ = ("_cert_chain", "_client_ephemeral", "_ephemeral", "_static")

    def __init__(
        self, ephemeral: KeyPair, static: KeyPair, cert_chain: bytes, header: bytes = WA_HEADER
    ) -> None:
        super().__init__(header, _Step.READ_HELLO)
        self._ephemeral = ephemeral
        self._static = static
        self._cert_chain = cert_chain
        self._client_ephemeral = b""

    def read_hello(self, data: bytes) -> None:
        self._enter(_Step.READ_HELLO)
        msg = _parse(data)
        if not (msg.HasField("clientHello") and msg.clientHello.HasField("ephemeral")):
            raise HandshakeError("client hello is missing its ephemeral key")
        self._client_ephemeral = _public_key(msg.clientHello.ephemeral, "client ephemeral key")
        self._state.mix_hash(self._client_ephemeral)
        self._step = _Step.SERVER_HELLO

    def server_hello(self) -> bytes:
        """The serialized serverHello: our ephemeral, our static and cert chain encrypted."""
        self._enter(_Step.SERVER_HELLO)
        self._state.mix_hash(self._ephemeral.public)
        self._mix_dh(self._ephemeral, self._client_ephemeral)
        static = self._state.encrypt_and_hash(self._static.public)
        self._mix_dh(self._static, self._client_ephemeral)
        payload = self._state.encrypt_and_hash(self._cert_chain)
        hello = HandshakeMessage.ServerHello(
            ephemeral=self._ephemeral.public, static=static, payload=payload
        )
        self._step = _Step.READ_FINISH
        return HandshakeMessage(serverHello=hello).SerializeToString()

    def read_finish(self, data: bytes) -> ClientFinishResult:
        self._enter(_Step.READ_FINISH)
        msg = _parse(data)
        finish = msg.clientFinish
        if not (msg.HasField("clientFinish") and finish.HasField("static")):
            raise HandshakeError("client finish or its encrypted static key is missing")
        if not finish.HasField("payload"):
            raise HandshakeError("client finish has no payload")
        static = self._state.decrypt_and_hash(finish.static)
        client_static = _public_key(static, "client static key")
        self._mix_dh(self._ephemeral, client_static)
        client_payload = self._state.decrypt_and_hash(finish.payload)
        self._step = _Step.TRANSPORT
        return ClientFinishResult(client_static=client_static, client_payload=client_payload)

    def transport(self) -> TransportCipher:
        """The transport cipher (server writes with the second key); callable once."""
        first, second = self._split(_Step.TRANSPORT)
        return TransportCipher(write_key=second, read_key=first)
