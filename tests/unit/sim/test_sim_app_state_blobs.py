"""The simulated phone's app-state blobs, decoded with wahttp.wa.appstate: a snapshot carries
the live records exactly as the patches did (so its LT hash is the phone's and later patches
apply on it), external mutations keep the patch MAC, and a tampered snapshot is refused."""

from __future__ import annotations

import pytest

from wahttp.sim.appstate import EXTERNAL_MUTATIONS_BYTES, PhoneAppState, contact_mutation
from wahttp.sim.media import MediaStore
from wahttp.wa.appstate import AppStateError, CollectionState, decode_patch, decode_snapshot
from wahttp.wa.binary import Node
from wahttp.wa.media import decrypt_media
from wahttp.wa.proto import appstate_pb2 as pb

NAME = "critical_unblock_low"


def _blob(media: MediaStore, ref: pb.ExternalBlobReference) -> bytes:
    data = media.get(ref.directPath)
    assert data is not None
    return decrypt_media(
        data,
        ref.mediaKey,
        "md-app-state",
        file_enc_sha256=ref.fileEncSha256,
        file_sha256=ref.fileSha256,
    )


def _phone(media: MediaStore, names: list[str | None]) -> PhoneAppState:
    app = PhoneAppState()
    for i, name in enumerate(names):
        app.change(NAME, [contact_mutation(f"1555000{i % 3}@s.whatsapp.net", name)[1]], media=media)
    return app


def _snapshot(app: PhoneAppState, media: MediaStore, version: int = 0) -> tuple[Node, list[Node]]:
    coll = app.answer(NAME, version, snapshot=True, media=media)
    snap = coll.child("snapshot")
    assert snap is not None
    patches = coll.child("patches")
    return snap, patches.children("patch") if patches is not None else []


def _lookup(app: PhoneAppState) -> dict[bytes, bytes]:
    return {app.key_id: app.key_data}


def test_snapshot_is_the_phones_state_and_later_patches_apply_on_it() -> None:
    media = MediaStore()
    app = _phone(media, ["Ada", "Bob", "Cy", "Ada L", None])  # 0 renamed, 1 removed
    node, patches = _snapshot(app, media)
    assert patches == []
    ref = pb.ExternalBlobReference.FromString(node.content_bytes() or b"")
    assert ref.directPath.startswith("/v/t62.15575-24/") and len(ref.mediaKey) == 32
    snapshot = pb.SyncdSnapshot.FromString(_blob(media, ref))
    state, mutations = decode_snapshot(NAME, snapshot, _lookup(app).get)
    phone = app.collections[NAME].state
    assert (state.version, state.hash, state.index_value_map) == (
        5,
        phone.hash,
        phone.index_value_map,
    )
    names = {m.index[1]: m.value.contactAction.fullName for m in mutations}
    assert names == {"15550000@s.whatsapp.net": "Ada L", "15550002@s.whatsapp.net": "Cy"}
    # Two more changes: the next first sync gets the same snapshot plus patches 6 and 7.
    for name in ("Dee", None):
        app.change(NAME, [contact_mutation("15550000@s.whatsapp.net", name)[1]], media=media)
    node2, patches = _snapshot(app, media)
    assert node2.content_bytes() == node.content_bytes()
    assert len(patches) == 2
    for p in patches:
        state, _ = decode_patch(
            NAME, pb.SyncdPatch.FromString(p.content_bytes() or b""), state, _lookup(app).get
        )
    assert (state.version, state.hash) == (7, app.collections[NAME].state.hash)
    # A collection without state has no snapshot; a later version asks for patches only.
    assert app.answer("regular", 0, snapshot=True, media=media).child("snapshot") is None
    assert app.answer(NAME, 6, media=media).child("snapshot") is None


def test_a_snapshot_whose_blob_is_gone_is_made_again() -> None:
    media = MediaStore()
    app = _phone(media, ["Ada"])
    node, _ = _snapshot(app, media)
    media.blobs.clear()
    again, _ = _snapshot(app, media)
    assert again.content_bytes() != node.content_bytes()
    ref = pb.ExternalBlobReference.FromString(again.content_bytes() or b"")
    assert decode_snapshot(NAME, pb.SyncdSnapshot.FromString(_blob(media, ref)), _lookup(app).get)


def test_a_tampered_snapshot_is_refused() -> None:
    media = MediaStore()
    app = _phone(media, ["Ada", "Bob"])
    node, _ = _snapshot(app, media)
    ref = pb.ExternalBlobReference.FromString(node.content_bytes() or b"")
    snapshot = pb.SyncdSnapshot.FromString(_blob(media, ref))
    dropped = pb.SyncdSnapshot()
    dropped.CopyFrom(snapshot)
    del dropped.records[0]  # a record left out: the LT hash (snapshot MAC) fails
    with pytest.raises(AppStateError, match="snapshot MAC"):
        decode_snapshot(NAME, dropped, _lookup(app).get)
    wrong = pb.SyncdSnapshot()
    wrong.CopyFrom(snapshot)
    wrong.version.version = 9
    with pytest.raises(AppStateError):
        decode_snapshot(NAME, wrong, _lookup(app).get)


def test_external_mutations_keep_the_patch_mac() -> None:
    media = MediaStore()
    app = PhoneAppState()
    jid = "15550001@s.whatsapp.net"
    app.change(NAME, [contact_mutation(jid, "Ada")[1]], media=media, external=True)
    patch = pb.SyncdPatch.FromString(app.collections[NAME].patches[0])
    assert len(patch.mutations) == 0 and patch.HasField("externalMutations")
    with pytest.raises(AppStateError, match="external"):
        decode_patch(NAME, patch, CollectionState(), _lookup(app).get)
    extra = pb.SyncdMutations.FromString(_blob(media, patch.externalMutations))
    patch.mutations.extend(extra.mutations)
    patch.ClearField("externalMutations")
    state, mutations = decode_patch(NAME, patch, CollectionState(), _lookup(app).get)
    assert mutations[0].value.contactAction.fullName == "Ada"
    assert state.hash == app.collections[NAME].state.hash


def test_large_patches_go_external_small_ones_stay_inline() -> None:
    media = MediaStore()
    app = PhoneAppState()
    app.change(NAME, [contact_mutation("15550001@s.whatsapp.net", "Ada")[1]], media=media)
    many = [
        contact_mutation(f"1555{i:06d}@s.whatsapp.net", "N" * 200)[1]
        for i in range(EXTERNAL_MUTATIONS_BYTES // 300)
    ]
    app.change(NAME, many, media=media)
    first, second = (pb.SyncdPatch.FromString(p) for p in app.collections[NAME].patches)
    assert len(first.mutations) == 1 and not first.HasField("externalMutations")
    assert len(second.mutations) == 0 and second.HasField("externalMutations")
    assert second.externalMutations.fileSizeBytes > EXTERNAL_MUTATIONS_BYTES


def test_media_store_serves_by_path_and_fails_on_demand() -> None:
    media = MediaStore(host="127.0.0.1:1")
    path = media.put(b"blob", "md-app-state")
    assert "?" in path and media.get(path) == b"blob"
    assert media.get(path.split("?")[0] + "?other=1") == b"blob"
    assert media.get("/v/t62.15575-24/none.enc") is None
    media.fail_next(500, 2)
    assert media.failures == [500, 500]
    conn = media.media_conn()
    assert conn.attr("auth") == media.auth and conn.attr("ttl") == "300"
    assert [h.attr("hostname") for h in conn.children("host")] == ["127.0.0.1:1"]
