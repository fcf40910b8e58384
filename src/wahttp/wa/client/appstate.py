"""App-state sync: keep the account's app state (contact names, chat settings) the phone syncs.

The phone shares app-state sync keys in a peer protocol message (stored as Baileys'
`app-state-sync-key-<base64 id>`); `<notification type="server_sync">` names collections that
changed. For each we run `<iq xmlns="w:sync:app:state" type="set"><sync><collection name version
return_snapshot/>` and decode the patches (wahttp.wa.appstate verifies every MAC and the LT hash).
A collection's new version and LT hash (`app-state-sync-version-<name>`, Baileys' layout) are
written in the same store write as the effects they carry (`app-state-chat-<jid>`), so a crash
never leaves a version that skipped effects, nor effects applied twice under an old version.
A patch that fails verification is refused whole: nothing of it is applied, the version stays.

External blobs: a first sync (`return_snapshot`) is answered with a `<snapshot>` holding an
ExternalBlobReference to a SyncdSnapshot, and a patch may carry its mutations as
`externalMutations` (a SyncdMutations blob). Both are downloaded from the media hosts
(wahttp.wa.media, hosts from the `media_conn` iq) and checked (file hashes, media MAC) before
decoding; the snapshot's records then count as SETs on an empty state (its MAC checks the LT
hash) and the patches apply on top. A blob that cannot be downloaded leaves the collection at
its old version (nothing written) and the collection is synced again later, with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import weakref
from typing import TYPE_CHECKING, Any

from wahttp.wa.appstate import (
    COLLECTIONS,
    AppStateError,
    CollectionState,
    MissingKeyError,
    Mutation,
    decode_patch,
    decode_snapshot,
)
from wahttp.wa.binary import Node
from wahttp.wa.client import appstate_keys, media_conn
from wahttp.wa.errors import WAError
from wahttp.wa.media import MediaError
from wahttp.wa.media.download import download_media, media_scheme
from wahttp.wa.proto import appstate_pb2 as pb
from wahttp.wa.proto.message_pb2 import Message

if TYPE_CHECKING:
    from wahttp.wa.client.client import Client

KEY_CATEGORY = "app-state-sync-key"
VERSION_CATEGORY = "app-state-sync-version"
# wahttp's own: what users see of each chat/contact, keyed by JID (Baileys ignores the files).
CHAT_CATEGORY = "app-state-chat"
MAX_ROUNDS = 20  # has_more_patches rounds per sync call
APP_STATE_MEDIA = "md-app-state"
BLOB_RETRY_DELAYS = (2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)  # then the next server_sync


def key_json(data: Message.AppStateSyncKeyData) -> dict[str, Any]:
    """The key as Baileys stores it (protobufjs toJSON: bytes base64, int64 a string)."""
    out: dict[str, Any] = {"keyData": base64.b64encode(data.keyData).decode()}
    if data.HasField("fingerprint"):
        fp = data.fingerprint
        out["fingerprint"] = {
            "rawId": fp.rawId,
            "currentIndex": fp.currentIndex,
            "deviceIndexes": list(fp.deviceIndexes),
        }
    if data.HasField("timestamp"):
        out["timestamp"] = str(data.timestamp)
    return out


def key_data_of(value: Any) -> bytes | None:
    raw = value.get("keyData") if isinstance(value, dict) else None
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw)
        except ValueError:
            return None
    return None


def state_json(state: CollectionState) -> dict[str, Any]:
    return {
        "version": state.version,
        "hash": state.hash,
        "indexValueMap": {k: {"valueMac": v} for k, v in state.index_value_map.items()},
    }


def state_of(value: Any) -> CollectionState:
    if not isinstance(value, dict):
        return CollectionState()
    version = value.get("version")
    digest = value.get("hash")
    live = value.get("indexValueMap") or {}
    return CollectionState(
        int(version) if isinstance(version, int | str) and str(version).isdigit() else 0,
        digest if isinstance(digest, bytes) and len(digest) == 128 else bytes(128),
        {
            k: v["valueMac"]
            for k, v in live.items()
            if isinstance(v, dict) and isinstance(v.get("valueMac"), bytes)
        },
    )


async def on_key_share(client: Client, share: Message.AppStateSyncKeyShare) -> None:
    """Store shared keys (called for peer messages from our own account only), then sync."""
    keys = {
        base64.b64encode(k.keyId.keyId).decode(): key_json(k.keyData)
        for k in share.keys
        if k.keyId.keyId and len(k.keyData.keyData) == 32
    }
    if not keys:
        return
    await client.store.set({KEY_CATEGORY: dict(keys)})
    client.creds.extra["myAppStateKeyId"] = list(keys)[-1]
    await client.save_creds()
    client.log.info("stored %d app-state sync key(s)", len(keys))
    client.spawn(sync(client, list(COLLECTIONS)), "wa-appstate")


async def on_server_sync(client: Client, node: Node) -> None:
    names = [c.attr("name") or "" for c in node.children("collection")]
    names = [n for n in names if n in COLLECTIONS]
    backlog = client.offline_sync
    if names and node.attr("offline") is not None and not backlog.completed:
        backlog.appstate.update(names)  # synced once the backlog is through (ib.py)
    elif names:
        client.spawn(sync(client, names), "wa-appstate")


def sync_deferred(client: Client) -> None:
    """Sync the collections the offline backlog's server_sync notifications named."""
    names = [n for n in COLLECTIONS if n in client.offline_sync.appstate]
    client.offline_sync.appstate.clear()
    if names:
        client.spawn(sync(client, names), "wa-appstate")


async def _lookup_keys(client: Client, ids: list[bytes]) -> dict[bytes, bytes]:
    b64 = {base64.b64encode(i).decode(): i for i in ids}
    found = await client.store.get(KEY_CATEGORY, list(b64))
    out = {}
    for text, value in found.items():
        data = key_data_of(value)
        if data is not None:
            out[b64[text]] = data
    return out


def _key_ids(patches: list[pb.SyncdPatch], snapshot: pb.SyncdSnapshot | None = None) -> list[bytes]:
    ids = {p.keyId.id for p in patches}
    ids.update(m.record.keyId.id for p in patches for m in p.mutations)
    if snapshot is not None:
        ids.add(snapshot.keyId.id)
        ids.update(r.keyId.id for r in snapshot.records)
    return sorted(ids)


# -- external blobs (snapshots, external mutations) --------------------------------------------
# Per client: blob-download retries scheduled and failures so far, by collection.
_retries: weakref.WeakKeyDictionary[Client, dict[str, int]] = weakref.WeakKeyDictionary()
_retrying: weakref.WeakKeyDictionary[Client, set[str]] = weakref.WeakKeyDictionary()


async def _download_blob(client: Client, name: str, ref: pb.ExternalBlobReference) -> bytes | None:
    """An app-state blob's plain bytes, or None (a warning naming the collection, a retry
    scheduled) when it cannot be had now. Keys and paths stay out of the log."""
    try:
        conn = await media_conn.current(client)
        return await download_media(
            ref.directPath,
            [h.hostname for h in conn.hosts],
            ref.mediaKey,
            APP_STATE_MEDIA,
            scheme=media_scheme(client.config.url),
            file_enc_sha256=ref.fileEncSha256 or None,
            file_sha256=ref.fileSha256 or None,
            file_size=ref.fileSizeBytes if ref.HasField("fileSizeBytes") else None,
        )
    except (MediaError, WAError, TimeoutError) as exc:
        client.log.warning("app-state %s: blob download failed: %s", name, exc)
        media_conn.forget(client)
        _retry_later(client, name)
        return None


def _retry_later(client: Client, name: str) -> None:
    """Sync the collection again after a delay that grows with each failure (one task each)."""
    pending = _retrying.setdefault(client, set())
    if name in pending:
        return
    failures = _retries.setdefault(client, {})
    attempt = failures.get(name, 0)
    if attempt >= len(BLOB_RETRY_DELAYS):
        client.log.warning("app-state %s: giving up on the blob until the next change", name)
        failures.pop(name, None)
        return
    failures[name] = attempt + 1
    pending.add(name)

    async def again() -> None:
        try:
            await asyncio.sleep(BLOB_RETRY_DELAYS[attempt])
        finally:
            pending.discard(name)
        await sync(client, [name])

    client.spawn(again(), "wa-appstate-retry")


def resume_after_login(client: Client) -> None:
    """Sync again the collections whose blob download failed on an earlier connection: their
    scheduled retries died with it, and the server will not say again that they changed."""
    names = [n for n in COLLECTIONS if n in _retries.get(client, {})]
    if names:
        client.spawn(sync(client, names), "wa-appstate-resume")


def _blob_done(client: Client, name: str) -> None:
    failures = _retries.get(client)
    if failures is not None:
        failures.pop(name, None)


async def _fetch_snapshot(client: Client, name: str, node: Node) -> pb.SyncdSnapshot | None:
    """The SyncdSnapshot a `<snapshot>` element references, downloaded and parsed."""
    try:
        ref = pb.ExternalBlobReference.FromString(node.content_bytes() or b"")
    except Exception:  # protobuf's DecodeError
        client.log.warning("app-state %s: undecodable snapshot reference", name)
        return None
    data = await _download_blob(client, name, ref)
    if data is None:
        return None
    try:
        return pb.SyncdSnapshot.FromString(data)
    except Exception:
        client.log.warning("app-state %s: undecodable snapshot", name)
        return None


async def _fetch_external_mutations(
    client: Client, name: str, patches: list[pb.SyncdPatch], above: int
) -> bool:
    """Merge each patch's external mutations (after its inline ones, as Baileys does) into
    it; False when one cannot be had. Patches at or below `above` are skipped (not applied)."""
    for patch in patches:
        if not patch.HasField("externalMutations") or patch.version.version <= above:
            continue
        data = await _download_blob(client, name, patch.externalMutations)
        if data is None:
            return False
        try:
            extra = pb.SyncdMutations.FromString(data)
        except Exception:
            client.log.warning("app-state %s: undecodable external mutations", name)
            return False
        patch.mutations.extend(extra.mutations)
        patch.ClearField("externalMutations")
    return True


async def sync(client: Client, names: list[str]) -> dict[str, int]:
    """Bring these collections up to date; returns {name: version} of those that moved."""
    moved: dict[str, int] = {}
    async with client.appstate_lock:
        pending = list(dict.fromkeys(names))
        for _round in range(MAX_ROUNDS):
            if not pending:
                break
            stored = await client.store.get(VERSION_CATEGORY, pending)
            states = {n: state_of(stored.get(n)) for n in pending}
            iq = Node(
                "iq",
                {"to": "s.whatsapp.net", "xmlns": "w:sync:app:state", "type": "set"},
                [
                    Node(
                        "sync",
                        {},
                        [
                            Node(
                                "collection",
                                {
                                    "name": n,
                                    "version": str(states[n].version),
                                    "return_snapshot": "true"
                                    if states[n].version == 0
                                    else "false",
                                },
                            )
                            for n in pending
                        ],
                    )
                ],
            )
            try:
                result = await client.query(iq)
            except (WAError, TimeoutError) as exc:
                client.log.warning("app-state sync query failed: %s", exc)
                break
            again = []
            sync_node = result.child("sync")
            for coll in sync_node.children("collection") if sync_node is not None else []:
                name = coll.attr("name") or ""
                if name not in states:
                    continue
                if coll.attr("type") == "error":
                    client.log.warning("app-state collection %s: server error", name)
                    continue
                ok = await _apply_collection(client, name, states[name], coll)
                if ok is not None and ok != states[name].version:
                    moved[name] = ok
                if ok is not None and coll.attr("has_more_patches") == "true":
                    again.append(name)
            pending = again
    return moved


async def _apply_collection(
    client: Client, name: str, state: CollectionState, coll: Node
) -> int | None:
    """Decode and apply one collection's answer; the new version, or None when refused."""
    snapshot = None
    snapshot_node = coll.child("snapshot")
    if snapshot_node is not None:
        snapshot = await _fetch_snapshot(client, name, snapshot_node)
        if snapshot is None:
            return None
    patches_node = coll.child("patches") or coll
    patches = []
    base_version = coll.attr_int("version", state.version)
    for i, p in enumerate(patches_node.children("patch")):
        data = p.content_bytes()
        if data is None:
            continue
        try:
            patch = pb.SyncdPatch.FromString(data)
        except Exception:  # protobuf's DecodeError
            client.log.warning("app-state %s: undecodable patch", name)
            return None
        if not patch.HasField("version"):
            patch.version.version = base_version + 1 + i
        patches.append(patch)
    if not patches and snapshot is None:
        return state.version
    above = snapshot.version.version if snapshot is not None else state.version
    if not await _fetch_external_mutations(client, name, patches, above):
        return None
    keys = await _lookup_keys(client, _key_ids(patches, snapshot))
    new_state = state
    mutations: list[Mutation] = []
    try:
        if snapshot is not None:
            new_state, mutations = decode_snapshot(name, snapshot, keys.get)
        for patch in patches:
            if patch.version.version <= new_state.version:
                continue  # already applied
            new_state, decoded = decode_patch(name, patch, new_state, keys.get)
            mutations.extend(decoded)
    except MissingKeyError as exc:
        client.log.warning(
            "app-state %s waits for key %s", name, base64.b64encode(exc.key_id).decode()
        )
        # Ask the phone for every key of these patches we lack (appstate_keys.py).
        appstate_keys.request_missing(
            client, [exc.key_id, *appstate_keys.missing(patches, keys, snapshot)]
        )
        return None
    except AppStateError as exc:
        client.log.warning("app-state %s v%d refused: %s", name, new_state.version + 1, exc)
        return None
    _blob_done(client, name)
    if new_state.version == state.version and snapshot is None:
        return state.version
    changes = await _effects(client, mutations)
    await client.store.set(
        {VERSION_CATEGORY: {name: state_json(new_state)}, CHAT_CATEGORY: changes}
    )
    client.log.info(
        "app-state %s synced to v%d (%d mutations)", name, new_state.version, len(mutations)
    )
    for m in mutations:
        name_setting = m.value.pushNameSetting
        if m.operation == "set" and client.creds.me is not None and name_setting.name:
            client.creds.me.name = name_setting.name
            await client.save_creds()
    return new_state.version


async def _effects(client: Client, mutations: list[Mutation]) -> dict[str, Any]:
    """The chat records these mutations change, read from the store and updated in order."""
    jids = sorted({m.index[1] for m in mutations if len(m.index) > 1 and "@" in m.index[1]})
    current = await client.store.get(CHAT_CATEGORY, jids) if jids else {}
    records: dict[str, dict[str, Any]] = {j: dict(current.get(j) or {}) for j in jids}
    for m in mutations:
        if len(m.index) < 2 or m.index[1] not in records:
            continue
        apply_mutation(records[m.index[1]], m)
    return {j: (r or None) for j, r in records.items()}


def apply_mutation(record: dict[str, Any], m: Mutation) -> None:
    """What users see of one chat/contact, updated by one mutation (Baileys' processSyncAction)."""
    kind, value = m.index[0], m.value
    remove = m.operation == "remove"
    if kind == "contact":
        if remove:
            for k in ("name", "firstName"):
                record.pop(k, None)
        else:
            c = value.contactAction
            if c.fullName or c.firstName:
                record["name"] = c.fullName or c.firstName
            if c.firstName:
                record["firstName"] = c.firstName
    elif kind == "mute":
        muted = not remove and value.muteAction.muted
        record["mutedUntil"] = (value.muteAction.muteEndTimestamp or -1) if muted else None
    elif kind == "archive":
        record["archived"] = not remove and value.archiveChatAction.archived
    elif kind == "pin_v1":
        record["pinned"] = (value.timestamp or 1) if not remove and value.pinAction.pinned else None
    elif kind == "markChatAsRead":
        record["read"] = not remove and value.markChatAsReadAction.read
        if record["read"]:  # when (unix ms): the read marker of the chat list (server/chats.py)
            last = value.markChatAsReadAction.messageRange.lastMessageTimestamp
            record["readAt"] = value.timestamp or (last * 1000 + 999 if last else None)
    elif kind == "deleteChat" and not remove:
        # The chat is gone from the phone: its settings go; the contact's name stays.
        for k in ("archived", "pinned", "mutedUntil", "read"):
            record.pop(k, None)
        record["deletedAt"] = value.timestamp or 0
    for k in [k for k, v in record.items() if v is None]:
        del record[k]


async def contact_name(client: Client, *jids: str | None) -> str | None:
    """The app-state contact name of the first of these JIDs that has one."""
    wanted = [j for j in jids if j]
    if not wanted:
        return None
    found = await client.store.get(CHAT_CATEGORY, wanted)
    for j in wanted:
        rec = found.get(j)
        if isinstance(rec, dict) and isinstance(rec.get("name"), str):
            return str(rec["name"])
    return None


async def chats(client: Client) -> dict[str, dict[str, Any]]:
    """Every chat/contact record the app state gave us."""
    return dict((await client.store.all_keys()).get(CHAT_CATEGORY, {}))
