"""Baileys <-> wahttp through our simulator: 50 texts each way, interleaved, every one decrypted
on the other side (pkmsg first, then msg), and every inbound one delivered to the webhook.

Sessions are started one way and then the other, as in a chat, before the traffic both ways at
once. Both sides starting one at the same instant is where libsignal-node's store races bite
hardest (Baileys then sends a message to our device on no session at all, or not at all: seen
as "No sessions" in its log, a loss no peer can recover); our side of that race is covered in
tests/unit/wa/test_signal.py. Under the traffic both ways, Baileys still reuses a message key
now and then (a lost write of its ratchet) or corrupts a session it tries on a message of
another; we answer with a retry receipt and it resends on a fresh session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code
from hooktools import Receiver
from servicetools import Service, service_settings, wait_status
from simtools import new_phone

from wahttp.server.webhooks import verify_signature
from wahttp.sim.runner import SimHandle

pytestmark = pytest.mark.interop
COUNT = 50


async def test_fifty_each_way_interleaved(
    sim: SimHandle,
    admin: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    service = Service(service_settings(sim, database_url, tmp_path))
    await service.start()
    baileys: Baileys | None = None
    try:
        async with service.http() as api:
            ours_number = await new_phone(admin)
            created = await api.post("/sessions", json={"id": "w", "webhookUrl": receiver.url})
            assert created.status_code == 201
            code = (await api.post("/sessions/w/pair-request", json={"number": ours_number})).json()
            await admin.post(
                f"/phones/{ours_number}/pairing-code", json={"code": code["pairingCode"]}
            )
            await wait_status(api, "w", "open")
            secret = (await api.get("/sessions/w/webhook")).json()["secret"]

            theirs = await new_phone(admin)
            await link_baileys_by_code(sim, admin, tmp_path / "baileys", theirs)
            baileys = await Baileys.start(sim.ws_url, sim.root_key_b64, tmp_path / "baileys")
            await baileys.next("open")

            async def from_baileys(i: int) -> None:
                assert baileys is not None
                await baileys.command(
                    cmd="send",
                    to=f"{ours_number}@s.whatsapp.net",
                    text=f"from baileys {i}",
                    ref=str(i),
                )

            async def from_wahttp(i: int) -> str:
                resp = await api.post(
                    "/sessions/w/send-message",
                    json={"to": f"+{theirs}", "message": f"from wahttp {i}"},
                )
                assert resp.status_code == 200, resp.text
                body = resp.json()
                assert body["success"] is True and body["timestamp"] > 0
                return str(body["messageId"])

            def inbound() -> list[dict[str, object]]:
                return [
                    r.json()["data"] for r in receiver.delivered() if r.json()["type"] == "message"
                ]

            # One session each way, one after the other.
            await baileys.command(
                cmd="send", to=f"{ours_number}@s.whatsapp.net", text="hello", ref="hello"
            )
            await receiver.wait_for(lambda: len(inbound()) == 1, timeout=30)
            hello = await from_wahttp(-1)
            while (event := await baileys.next("message"))["id"] != hello or event["stub"]:
                pass

            sent_ids = []
            for i in range(COUNT):
                await from_baileys(i)
                sent_ids.append(await from_wahttp(i))

            # Baileys decrypted all 50 of ours, each exactly once. When libsignal-node fails one
            # at first (see the module docstring), Baileys shows a stub (CIPHERTEXT) and sends a
            # retry receipt with fresh keys, we encrypt the message again on a new session, and
            # it must decrypt that.
            got: dict[str, list[str]] = {}
            stubs: set[str] = set()
            async with asyncio.timeout(60):
                while len(got) < COUNT:
                    event = await baileys.next("message")
                    if event["fromMe"]:
                        continue
                    if event["stub"] is not None:
                        stubs.add(event["id"])
                    else:
                        got.setdefault(event["id"], []).append(event["text"])
            assert set(got) == set(sent_ids)
            assert sorted(t for texts in got.values() for t in texts) == sorted(
                f"from wahttp {i}" for i in range(COUNT)
            )
            assert stubs <= set(got)
            print(f"\n{len(stubs)} of {COUNT} decrypted by Baileys after a retry receipt")

            # wahttp decrypted all 50 of Baileys' and the webhook got each exactly once, signed.
            await receiver.wait_for(lambda: len(inbound()) >= COUNT + 1, timeout=60)
            texts = [m["text"] for m in inbound()]
            expected = ["hello", *(f"from baileys {i}" for i in range(COUNT))]
            assert sorted(texts) == sorted(expected)  # type: ignore[type-var]
            assert all(m["chat"] == f"{theirs}@s.whatsapp.net" for m in inbound())
            assert all(c == 1 for c in receiver.delivered_counts().values())
            for request in receiver.delivered():
                headers = request.headers
                assert verify_signature(
                    secret,
                    headers["x-wahttp-timestamp"],
                    request.body,
                    headers["x-wahttp-signature"],
                )

            # Each way a session was started (pkmsg) and then used (msg). When both sides start
            # at once a side may keep sending pkmsg for a while, or start over after a retry
            # receipt, so the split is printed rather than fixed.
            stats = (await admin.get("/stats")).json()["enc"]
            counts = {(s["from"], s["to"], s["type"]): s["count"] for s in stats}
            for sender, recipient in ((theirs, ours_number), (ours_number, theirs)):
                pkmsg = counts.get((sender, recipient, "pkmsg"), 0)
                msg = counts.get((sender, recipient, "msg"), 0)
                print(f"{sender} -> {recipient}: {pkmsg} pkmsg, {msg} msg")
                assert pkmsg >= 1
                assert pkmsg + msg >= COUNT

            # And our sent messages got delivered receipts back from Baileys.
            async def delivered(message_id: str) -> bool:
                status = (await api.get(f"/sessions/w/messages/{message_id}")).json()
                return bool(status["status"] in ("delivered", "read"))

            async with asyncio.timeout(30):
                for message_id in sent_ids:
                    while not await delivered(message_id):
                        await asyncio.sleep(0.05)

            # Both clients acked every stanza they were given, each by its own ack or receipt
            # (the simulator matches them as the real server does): nothing is left pending.
            def left_pending() -> list[str]:
                return [
                    f"{key}: {pkey}"
                    for key, box in sim.server.router.mailboxes.items()
                    for pkey in box.pending
                ]

            async with asyncio.timeout(15):
                while left_pending():
                    await asyncio.sleep(0.1)
    finally:
        if baileys is not None:
            await baileys.stop()
        await service.stop()
