"""App-state key requests (wa/client/appstate_keys.py): which ids are due, and the message."""

from __future__ import annotations

from wahttp.wa.client.appstate_keys import REQUEST_INTERVAL, KeyRequests, key_request, missing
from wahttp.wa.client.messages import Message
from wahttp.wa.proto import appstate_pb2 as pb


def test_an_id_is_due_once_per_interval_and_again_after_a_failed_send() -> None:
    requests = KeyRequests()
    assert requests.interval == REQUEST_INTERVAL == 24 * 3600
    assert requests.due([b"a", b"b", b"a", b""], now=100.0) == [b"a", b"b"]
    assert requests.due([b"a", b"c"], now=101.0) == [b"c"]
    assert requests.due([b"a"], now=100.0 + REQUEST_INTERVAL - 1) == []
    assert requests.due([b"a"], now=100.0 + REQUEST_INTERVAL) == [b"a"]
    requests.forget([b"b"])  # its request never left: the next sync asks again
    assert requests.due([b"b", b"c"], now=102.0) == [b"b"]


def test_missing_lists_the_patch_and_mutation_keys_we_lack() -> None:
    patch = pb.SyncdPatch()
    patch.keyId.id = b"k1"
    for key in (b"k2", b"k1", b"k3"):
        patch.mutations.add().record.keyId.id = key
    assert missing([patch], {b"k1": b"x"}) == [b"k2", b"k3"]
    assert missing([patch], {b"k1", b"k2", b"k3"}) == []


def test_missing_lists_the_snapshot_and_record_keys_we_lack() -> None:
    """A first sync is a snapshot whose records keep the keys their patches had: one request
    asks for all of them, not one per sync."""
    snapshot = pb.SyncdSnapshot()
    snapshot.keyId.id = b"k3"
    for key in (b"k1", b"k2", b"k3"):
        snapshot.records.add().keyId.id = key
    patch = pb.SyncdPatch()
    patch.keyId.id = b"k4"
    assert missing([patch], {b"k1"}, snapshot) == [b"k3", b"k2", b"k4"]
    assert missing([], {b"k1", b"k2", b"k3"}, snapshot) == []


def test_the_request_is_the_protocol_message_whatsmeow_sends() -> None:
    decoded = Message.FromString(
        key_request([b"\x00\x01abcd", b"\x00\x02efgh"]).SerializeToString()
    )
    proto = decoded.protocolMessage
    assert proto.type == Message.ProtocolMessage.APP_STATE_SYNC_KEY_REQUEST == 7
    assert [k.keyId for k in proto.appStateSyncKeyRequest.keyIds] == [
        b"\x00\x01abcd",
        b"\x00\x02efgh",
    ]
    # Field numbers as WAProto has them: protocolMessage 12, appStateSyncKeyRequest 8, keyIds 1.
    raw = decoded.SerializeToString()
    assert raw.startswith(b"\x62")  # field 12, length-delimited
    assert b"\x42" in raw  # field 8 of ProtocolMessage, length-delimited
