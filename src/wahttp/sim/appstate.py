"""The simulated phone's app state: contacts and chat settings, synced to companions as patches.

The phone holds one app-state sync key, shares it with each new companion (a peer protocol
message, once the companion has uploaded pre-keys so a session can be built), keeps each
collection's patch history, and answers `<iq xmlns="w:sync:app:state">` with the patches after
the version asked for. A change is encoded as a patch and announced to the account's companions
with `<notification type="server_sync"><collection name version/>`.

External blobs, as the real server sends them (on the media host, `sim/media.py`): a sync with
`return_snapshot="true"` of a collection that has state is answered with a `<snapshot>` holding
an ExternalBlobReference to a SyncdSnapshot (the live records exactly as the patches carried
them, so its LT hash is the phone's), plus the patches newer than the snapshot. A snapshot is
made once per collection and reused while its blob exists, so later first syncs get it and the
patches after it. A patch whose mutations exceed EXTERNAL_MUTATIONS_BYTES (or one the admin API
marks `external`) carries them in an external SyncdMutations blob instead.
"""

from __future__ import annotations

import base64
import logging
import os
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wahttp.sim import privacy
from wahttp.wa.appstate import COLLECTIONS, CollectionState, MutationKeys, NewMutation, encode_patch
from wahttp.wa.appstate.keys import snapshot_mac
from wahttp.wa.binary import Node
from wahttp.wa.jid import S_WHATSAPP_NET
from wahttp.wa.proto import appstate_pb2 as pb
from wahttp.wa.proto.message_pb2 import HistorySync, Message

if TYPE_CHECKING:
    from wahttp.sim.connection import ServerConnection
    from wahttp.sim.media import MediaStore
    from wahttp.sim.network import Account
    from wahttp.sim.routing import Router
    from wahttp.sim.server import SimServer

log = logging.getLogger(__name__)

APP_STATE_MEDIA = "md-app-state"
EXTERNAL_MUTATIONS_BYTES = 64 * 1024  # larger encoded mutations go in an external blob


@dataclass
class Collection:
    state: CollectionState = field(default_factory=CollectionState)
    patches: list[bytes] = field(default_factory=list)  # patches[i] is version i + 1
    # The live records as the patches carried them (base64 index MAC -> SyncdRecord bytes).
    live: dict[str, bytes] = field(default_factory=dict)
    # The snapshot made for first syncs: (its version, the ExternalBlobReference bytes).
    snapshot: tuple[int, bytes] | None = None

    def record(self, patch: pb.SyncdPatch) -> None:
        """Keep the live records of a patch (before any tampering: the phone's own)."""
        for m in patch.mutations:
            key = base64.b64encode(m.record.index.blob).decode()
            if m.operation == pb.SyncdMutation.REMOVE:
                self.live.pop(key, None)
            else:
                self.live[key] = m.record.SerializeToString()

    def snapshot_ref(
        self, name: str, key_id: bytes, key_data: bytes, media: MediaStore
    ) -> tuple[int, bytes]:
        """The collection's snapshot blob, made at the current version unless one exists."""
        if self.snapshot is not None:
            ref = pb.ExternalBlobReference.FromString(self.snapshot[1])
            if media.get(ref.directPath) is not None:
                return self.snapshot
        version = self.state.version
        snap = pb.SyncdSnapshot()
        snap.version.version = version
        snap.records.extend(pb.SyncdRecord.FromString(r) for r in self.live.values())
        snap.mac = snapshot_mac(MutationKeys.derive(key_data), self.state.hash, version, name)
        snap.keyId.id = key_id
        blob = media.upload_blob(snap.SerializeToString(), APP_STATE_MEDIA)
        self.snapshot = (version, blob.SerializeToString())
        return self.snapshot


@dataclass
class PhoneAppState:
    key_id: bytes = field(default_factory=lambda: bytes(2) + os.urandom(4))
    key_data: bytes = field(default_factory=lambda: os.urandom(32))
    collections: dict[str, Collection] = field(
        default_factory=lambda: {name: Collection() for name in COLLECTIONS}
    )
    contacts: dict[str, str] = field(default_factory=dict)  # jid -> full name
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)  # jid -> settings
    shared_with: set[int] = field(default_factory=set)  # device ids that got the key
    # Keys used before a rotation (id -> data): still answered when a companion asks for one.
    retired_keys: dict[bytes, bytes] = field(default_factory=dict)
    # (device id, key ids) of every APP_STATE_SYNC_KEY_REQUEST a companion sent (phone_peer.py)
    key_requests: list[tuple[int, list[bytes]]] = field(default_factory=list)

    def rotate_key(self) -> bytes:
        """A new current key (later patches use it); the old one is kept for requests."""
        self.retired_keys[self.key_id] = self.key_data
        self.key_id, self.key_data = bytes(2) + os.urandom(4), os.urandom(32)
        return self.key_id

    def key_share(self, ids: list[bytes] | None = None) -> Message:
        """A share of the current key, or of the asked keys this phone has (maybe none)."""
        known = {**self.retired_keys, self.key_id: self.key_data}
        message = Message()
        proto = message.protocolMessage
        proto.type = Message.ProtocolMessage.APP_STATE_SYNC_KEY_SHARE
        for key_id in [self.key_id] if ids is None else [i for i in ids if i in known]:
            key = proto.appStateSyncKeyShare.keys.add()
            key.keyId.keyId = key_id
            key.keyData.keyData = known[key_id]
            key.keyData.fingerprint.rawId = int.from_bytes(key_id[-4:], "big")
            key.keyData.fingerprint.currentIndex = 0
            key.keyData.fingerprint.deviceIndexes.append(0)
            key.keyData.timestamp = int(time.time() * 1000)
        return message

    def change(
        self,
        name: str,
        mutations: list[NewMutation],
        *,
        tamper: bool = False,
        media: MediaStore | None = None,
        external: bool = False,
    ) -> int:
        """Encode and record the next patch of a collection; returns its version. With a media
        store, its mutations go in an external blob when `external` or when they are large."""
        coll = self.collections[name]
        patch, state = encode_patch(name, coll.state, self.key_id, self.key_data, mutations)
        coll.record(patch)
        if tamper:
            # Altered on the way: one byte of the first value flipped, the MACs left as they were.
            blob = bytearray(patch.mutations[0].record.value.blob)
            blob[20] ^= 0x01
            patch.mutations[0].record.value.blob = bytes(blob)
        if media is not None:
            externalize(patch, media, force=external)
        coll.patches.append(patch.SerializeToString())
        coll.state = state
        return state.version

    @staticmethod
    def initial_bootstrap(chunk: bytes | None = None) -> Message:
        """The history sync the phone sends a new companion after the key share: the initial
        bootstrap, inline (zlib-deflated), without messages as the simulator keeps no chat
        history; `chunk` is the serialized HistorySync to send (privacy.bootstrap_history's
        conversations carry the account's privacy tokens). Baileys waits for it (20 s,
        events buffered) before its first full app-state sync."""
        history = HistorySync(syncType=Message.INITIAL_BOOTSTRAP, chunkOrder=0, progress=100)
        payload = chunk if chunk is not None else history.SerializeToString()
        message = Message()
        proto = message.protocolMessage
        proto.type = Message.ProtocolMessage.HISTORY_SYNC_NOTIFICATION
        note = proto.historySyncNotification
        note.syncType = Message.INITIAL_BOOTSTRAP
        note.chunkOrder = 0
        note.progress = 100
        note.initialHistBootstrapInlinePayload = zlib.compress(payload)
        return message

    def answer(
        self, name: str, version: int, snapshot: bool = False, media: MediaStore | None = None
    ) -> Node:
        coll = self.collections.get(name)
        if coll is None:
            return Node(
                "collection", {"name": name, "type": "error"}, [Node("error", {"code": "404"})]
            )
        attrs = {"name": name, "version": str(coll.state.version)}
        children = []
        if snapshot and media is not None and coll.state.version > 0:
            version, ref = coll.snapshot_ref(name, self.key_id, self.key_data, media)
            children.append(Node("snapshot", {}, ref))
        wanted = coll.patches[version:] if 0 <= version <= len(coll.patches) else coll.patches
        patches = [Node("patch", {}, data) for data in wanted]
        if patches:
            children.append(Node("patches", {}, patches))
        return Node("collection", attrs, children or None)

    def summary(self) -> dict[str, Any]:
        return {
            "contacts": dict(self.contacts),
            "chats": {k: dict(v) for k, v in self.chats.items()},
            "versions": {n: c.state.version for n, c in self.collections.items()},
        }


def externalize(patch: pb.SyncdPatch, media: MediaStore, *, force: bool = False) -> bool:
    """Move a patch's mutations to an external SyncdMutations blob when forced or large.
    The MACs stay: the patch MAC covers the value MACs wherever the mutations travel."""
    blob = pb.SyncdMutations(mutations=patch.mutations).SerializeToString()
    if not force and len(blob) <= EXTERNAL_MUTATIONS_BYTES:
        return False
    patch.externalMutations.CopyFrom(media.upload_blob(blob, APP_STATE_MEDIA))
    del patch.mutations[:]
    return True


def contact_mutation(jid: str, name: str | None) -> tuple[str, NewMutation]:
    value = pb.SyncActionValue(timestamp=int(time.time() * 1000))
    if name is None:
        return "critical_unblock_low", NewMutation("remove", ["contact", jid], value, 2)
    value.contactAction.fullName = name
    value.contactAction.firstName = name.split(maxsplit=1)[0] if name.split() else name
    value.contactAction.saveOnPrimaryAddressbook = True
    return "critical_unblock_low", NewMutation("set", ["contact", jid], value, 2)


def chat_mutations(
    jid: str,
    *,
    archive: bool | None = None,
    pin: bool | None = None,
    mute_until: int | None = None,
    read: bool | None = None,
) -> list[tuple[str, NewMutation]]:
    now = int(time.time() * 1000)
    out = []
    if mute_until is not None:
        v = pb.SyncActionValue(timestamp=now)
        v.muteAction.muted = mute_until != 0
        if mute_until > 0:
            v.muteAction.muteEndTimestamp = mute_until
        out.append(("regular_high", NewMutation("set", ["mute", jid], v, 2)))
    if archive is not None:
        v = pb.SyncActionValue(timestamp=now)
        v.archiveChatAction.archived = archive
        out.append(("regular_low", NewMutation("set", ["archive", jid], v, 3)))
    if pin is not None:
        v = pb.SyncActionValue(timestamp=now)
        v.pinAction.pinned = pin
        out.append(("regular_low", NewMutation("set", ["pin_v1", jid], v, 5)))
    if read is not None:
        v = pb.SyncActionValue(timestamp=now)
        v.markChatAsReadAction.read = read
        out.append(("regular_low", NewMutation("set", ["markChatAsRead", jid], v, 3)))
    return out


async def apply_changes(
    router: Router,
    account: Account,
    changes: list[tuple[str, NewMutation]],
    *,
    tamper: bool = False,
    media: MediaStore | None = None,
    external: bool = False,
) -> dict[str, int]:
    """Record the changes as one patch per collection and tell the companions. With a media
    store, large (or, with `external`, all) patches carry their mutations in a blob."""
    app = account.app_state
    by_name: dict[str, list[NewMutation]] = {}
    for name, m in changes:
        by_name.setdefault(name, []).append(m)
    versions = {
        name: app.change(name, ms, tamper=tamper, media=media, external=external)
        for name, ms in by_name.items()
    }
    for device_id in list(account.devices):
        for name, version in versions.items():
            node = Node(
                "notification",
                {
                    "from": S_WHATSAPP_NET,
                    "type": "server_sync",
                    "id": f"sync.{name}.{version}.{device_id}",
                    "t": str(int(time.time())),
                },
                [Node("collection", {"name": name, "version": str(version)})],
            )
            await router.deliver((account.number, device_id), node)
    return versions


async def share_keys(router: Router, account: Account, device_id: int) -> None:
    """The phone sends its app-state sync key to a companion (once per device), then the
    initial history sync notification."""
    app = account.app_state
    if device_id in app.shared_with or device_id not in account.devices:
        return
    app.shared_with.add(device_id)
    try:
        await account.phone_peer.send_to_own_device(router, device_id, app.key_share())
        chunk = privacy.bootstrap_history(router.network, account.number).SerializeToString()
        bootstrap = app.initial_bootstrap(chunk)
        await account.phone_peer.send_to_own_device(router, device_id, bootstrap)
    except Exception:
        app.shared_with.discard(device_id)
        log.exception("could not share app-state keys with device %d", device_id)


async def on_sync_iq(server: SimServer, conn: ServerConnection, node: Node) -> Node:
    from wahttp.sim.iq import result

    device = conn.device
    assert device is not None
    account = server.network.accounts[device.number]
    sync = node.child("sync")
    answers = []
    for coll in sync.children("collection") if sync is not None else []:
        answers.append(
            account.app_state.answer(
                coll.attr("name") or "",
                coll.attr_int("version", 0),
                snapshot=coll.attr("return_snapshot") == "true",
                media=server.media,
            )
        )
    return result(node, [Node("sync", {}, answers)])
