"""Message payloads: build and read the Message protobuf, WhatsApp's random padding, ids."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from wahttp.wa.errors import WAError
from wahttp.wa.proto import message_pb2

Message = message_pb2.Message


class PayloadError(WAError):
    """A decrypted payload is not a valid padded Message."""


def new_message_id() -> str:
    """`3EB0` + 18 uppercase hex digits, as WhatsApp Web ids look."""
    return "3EB0" + secrets.token_hex(9).upper()


def pad(data: bytes) -> bytes:
    """Append 1..16 bytes, each equal to the pad length (WhatsApp's padRandomMax16)."""
    n = (os.urandom(1)[0] & 0x0F) or 16
    return data + bytes([n]) * n


def unpad(data: bytes) -> bytes:
    if not data:
        raise PayloadError("empty plaintext")
    n = data[-1]
    if n == 0 or n > len(data):
        raise PayloadError("bad padding")
    return data[:-n]


def text_message(text: str) -> Message:
    msg = Message()
    msg.extendedTextMessage.text = text
    msg.messageContextInfo.messageSecret = os.urandom(32)
    return msg


def device_sent(destination: str, message: Message) -> Message:
    """What our own other devices get: the message wrapped with its destination chat."""
    wrapper = Message()
    wrapper.deviceSentMessage.destinationJid = destination
    wrapper.deviceSentMessage.message.CopyFrom(message)
    if message.HasField("messageContextInfo"):
        wrapper.messageContextInfo.CopyFrom(message.messageContextInfo)
    return wrapper


def protocol_message(message: Message) -> Message.ProtocolMessage | None:
    """The protocol message a payload carries (inside our own devices' wrapper too), if any."""
    if message.HasField("deviceSentMessage"):
        message = message.deviceSentMessage.message
    return message.protocolMessage if message.HasField("protocolMessage") else None


def parse(plaintext: bytes) -> Message:
    try:
        return Message.FromString(unpad(plaintext))
    except PayloadError:
        raise
    except Exception as exc:  # protobuf's DecodeError
        raise PayloadError("undecodable Message protobuf") from exc


@dataclass(frozen=True, slots=True)
class Content:
    """What a message says, in the terms webhooks report."""

    kind: str  # text, reaction, protocol, sender_key, unknown
    text: str | None


def content_of(message: Message) -> Content:
    if message.HasField("conversation"):
        return Content("text", message.conversation)
    if message.HasField("extendedTextMessage"):
        return Content("text", message.extendedTextMessage.text)
    if message.HasField("reactionMessage"):
        return Content("reaction", message.reactionMessage.text)
    if message.HasField("protocolMessage"):
        return Content("protocol", None)
    if message.HasField("senderKeyDistributionMessage"):
        return Content("sender_key", None)
    return Content("unknown", None)
