"""Soak: sessions exchange messages with simulated phones and with Baileys while the simulator
injects random faults and the wahttp process is SIGKILLed and restarted; nothing may be lost.

At the end: every message the API accepted was decrypted exactly once on the other side (a
message whose request failed arrives at most once); no Signal session is broken (a final
message each way decrypts); every inbound message produced a webhook event; every session is
open again. 440 (replaced) and 401 (logged out) are exercised on sacrificial sessions: they must
stop and be removed respectively, never fight. Counts are printed. Bounded in time: the
traffic phase lasts WAHTTP_SOAK_SECONDS (default 120).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from baileys_tools import Baileys, link_baileys_by_code, require_node
from hooktools import Receiver
from processtools import ServeProcess, free_port, fresh_schema_dsn
from simtools import new_phone

from wahttp.sim.runner import SimHandle

pytestmark = [pytest.mark.soak, pytest.mark.interop]
SOAK_SECONDS = float(os.environ.get("WAHTTP_SOAK_SECONDS", "120"))
SESSIONS = 5
KILLS = 5
FAULTS = 100
API_KEY = "soak-admin-key-" + "x" * 20
HOOK_SECRET = "soak-webhook-secret-0123456789"


@pytest.fixture
async def soak_db(postgres_dsn: str) -> AsyncIterator[str]:
    async with fresh_schema_dsn(postgres_dsn, "wahttp_soak") as dsn:
        yield dsn


async def _final_b(baileys: Baileys, number: str, origins: object) -> None:
    """Send Baileys' final message until the server has accepted one copy."""
    while not any(
        e["ref"] == "final-b" and e["id"] in origins  # type: ignore[operator]
        for e in baileys.of("sent")
    ):
        await baileys.command(
            cmd="send", to=f"{number}@s.whatsapp.net", text="final-b", ref="final-b"
        )
        await asyncio.sleep(2)


async def _pair(w: ServeProcess, admin: httpx.AsyncClient, session_id: str) -> str:
    number = await new_phone(admin)
    assert (await w.api.post("/sessions", json={"id": session_id})).status_code == 201
    code = (
        await w.api.post(f"/sessions/{session_id}/pair-request", json={"number": number})
    ).json()
    await admin.post(f"/phones/{number}/pairing-code", json={"code": code["pairingCode"]})
    await w.wait_state(session_id, "open")
    return number


async def test_soak(sim: SimHandle, admin: httpx.AsyncClient, soak_db: str, tmp_path: Path) -> None:
    require_node()
    rng = random.Random(int(os.environ.get("WAHTTP_SOAK_SEED", "20261124")))
    receiver = Receiver()
    await receiver.up()
    env = dict(
        HOST="127.0.0.1",
        PORT=str(free_port()),
        DATABASE_URL=soak_db,
        WAHTTP_API_KEY=API_KEY,
        WAHTTP_DATA_DIR=str(tmp_path / "data"),
        WAHTTP_AUTH_DIR=str(tmp_path / "auth_sessions"),
        WAHTTP_WA_URL=sim.ws_url,
        WAHTTP_WA_ROOT_KEY=sim.root_key_b64,
        WAHTTP_RECONNECT_BASE="0.2",
        WAHTTP_RECONNECT_MAX="2",
        WAHTTP_KEEPALIVE_INTERVAL="1",
        WAHTTP_KEEPALIVE_GRACE="1",
        WAHTTP_WEBHOOK_URL=receiver.url,
        WAHTTP_WEBHOOK_SECRET=HOOK_SECRET,
        WAHTTP_WEBHOOK_BACKOFF_BASE="0.2",
        WAHTTP_WEBHOOK_BACKOFF_MAX="2",
        WAHTTP_WEBHOOK_MAX_ATTEMPTS="1000",
        WAHTTP_SEND_RATE="0",
    )
    w = ServeProcess(env, tmp_path / "serve.log", API_KEY)
    baileys: Baileys | None = None
    try:
        await w.start()
        ids = [f"s{i}" for i in range(SESSIONS)]
        numbers = {s: await _pair(w, admin, s) for s in ids}
        friends = {s: await new_phone(admin) for s in ids}
        baileys_number = await new_phone(admin)
        await link_baileys_by_code(sim, admin, tmp_path / "baileys", baileys_number)
        baileys = await Baileys.start(
            sim.ws_url, sim.root_key_b64, tmp_path / "baileys", "--reconnect"
        )
        await baileys.next("open")

        def baileys_story() -> str:
            assert baileys is not None
            kinds = Counter(str(e.get("event")) for e in baileys.events)
            closes = Counter(str(e.get("code")) for e in baileys.of("close"))
            return f"events {dict(kinds)} closes {dict(closes)} last {baileys.events[-5:]}"

        counts: Counter[str] = Counter()
        accepted: dict[str, tuple[str, str]] = {}  # message id -> (session, peer number)
        failed_texts: set[str] = set()
        inbound_texts: set[str] = set()  # sent to our sessions by phones and Baileys

        async def send_from_session(session_id: str, to: str, text: str) -> None:
            try:
                resp = await w.api.post(
                    f"/sessions/{session_id}/send-message", json={"to": to, "message": text}
                )
            except httpx.TransportError:
                resp = None
            if resp is not None and resp.status_code == 200:
                accepted[resp.json()["messageId"]] = (session_id, to)
                counts["api_accepted"] += 1
            else:
                failed_texts.add(text)
                counts["api_failed"] += 1
                counts[f"api_failed_{resp.status_code if resp is not None else 'down'}"] += 1

        # Connection faults hit our sessions' streams (Baileys is the reference peer here, not
        # the system under test); refusals and restarts hit everyone, Baileys included.
        our_jids = [(await w.status(s))["jid"] for s in ids]
        chaos = await admin.post(
            "/faults/chaos",
            json={
                "count": FAULTS + 20,
                "interval": 0.8 * SOAK_SECONDS / (FAULTS + 20),
                "kinds": ["drop", "stall", "5xx", "515", "refuse", "restart"],
                "seed": 7,
                "targets": our_jids,
            },
        )
        assert chaos.status_code in (200, 201, 202), chaos.text
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SOAK_SECONDS
        kill_times = sorted(rng.uniform(5, SOAK_SECONDS - 10) for _ in range(KILLS))
        n = 0
        while loop.time() < deadline:
            n += 1
            session_id = rng.choice(ids)
            action = rng.random()
            if kill_times and loop.time() > deadline - SOAK_SECONDS + kill_times[0]:
                kill_times.pop(0)
                await w.kill()
                counts["sigkill"] += 1
                await w.start()
            elif action < 0.35:
                await send_from_session(session_id, friends[session_id], f"w-{n}")
            elif action < 0.6:
                text = f"f-{n}"
                await admin.post(
                    f"/phones/{friends[session_id]}/messages",
                    json={"to": numbers[session_id], "text": text},
                )
                inbound_texts.add(text)
                counts["phone_sent"] += 1
            elif action < 0.8:
                text = f"b-{n}"
                await baileys.command(
                    cmd="send", to=f"{numbers[session_id]}@s.whatsapp.net", text=text, ref=text
                )
                counts["baileys_sent"] += 1
            else:
                await send_from_session(session_id, baileys_number, f"wb-{n}")
            await asyncio.sleep(rng.uniform(0.02, 0.2))
        async with asyncio.timeout(120):  # let the chaos run finish its faults
            while (await admin.get("/faults")).json()["running"]:
                await asyncio.sleep(0.5)
        faults = (await admin.get("/faults")).json()
        counts["faults"] = sum(faults["injected"].values())
        counts.update({f"fault_{k}": n for k, n in faults["injected"].items()})

        # Everyone recovers by itself.
        for session_id in ids:
            await w.wait_state(session_id, "open", timeout=90)

        # A final message each way per session decrypts: no broken Signal session.
        for session_id in ids:
            await send_from_session(session_id, friends[session_id], f"final-out-{session_id}")
            text = f"final-in-{session_id}"
            await admin.post(
                f"/phones/{friends[session_id]}/messages",
                json={"to": numbers[session_id], "text": text},
            )
            inbound_texts.add(text)
            assert f"final-out-{session_id}" not in failed_texts
        await send_from_session(ids[0], baileys_number, "final-to-baileys")
        # Baileys reports "sent" before the server acks it (and may still be reconnecting after
        # the chaos): send the final message until the server has it.
        origins = sim.server.router.origins

        try:
            async with asyncio.timeout(90):
                await _final_b(baileys, numbers[ids[0]], origins)
        except TimeoutError:
            raise AssertionError("Baileys never got final-b through: " + baileys_story()) from None
        for event in baileys.of("sent"):
            if (
                event["ref"]
                and event["ref"].startswith(("b-", "final-b"))
                and event["id"] in origins
            ):
                inbound_texts.add(event["ref"])
                counts["baileys_accepted_by_server"] += 1
        assert "final-b" in inbound_texts

        # Outbound: every accepted message decrypted exactly once on the other side.
        async def phone_received(number: str) -> Counter[str]:
            data = (await admin.get(f"/phones/{number}/messages")).json()
            return Counter(m["id"] for m in data["received"])

        async with asyncio.timeout(120):
            while True:
                got: Counter[str] = Counter()
                for session_id in ids:
                    got.update(await phone_received(friends[session_id]))
                missing = [
                    m for m, (_, to) in accepted.items() if to != baileys_number and m not in got
                ]
                if not missing:
                    break
                await asyncio.sleep(0.5)
        assert all(got[m] == 1 for m in accepted if accepted[m][1] != baileys_number)
        for session_id in ids:
            inbox = (await admin.get(f"/phones/{friends[session_id]}/messages")).json()
            counts["phones_undecryptable"] += inbox["undecryptable"]

        # Receipts: a phone answers every message it decrypted with a delivery receipt, which
        # the simulator keeps until our session acks it (redelivering it after any fault), so
        # every such message reaches "delivered" or later in wahttp, within a bounded settle.
        async def lagging_receipts() -> dict[str, str]:
            lagging: dict[str, str] = {}
            for message_id, (session_id, to) in accepted.items():
                if to == baileys_number or message_id not in got:
                    continue
                resp = await w.api.get(f"/sessions/{session_id}/messages/{message_id}")
                status = resp.json()["status"] if resp.status_code == 200 else resp.status_code
                if status not in ("delivered", "read", "played"):
                    lagging[message_id] = str(status)
            return lagging

        lagging = await lagging_receipts()
        counts["receipts_late"] = len(lagging)  # not yet recorded when the phones had them all
        try:
            async with asyncio.timeout(60):
                while lagging:
                    await asyncio.sleep(1)
                    lagging = await lagging_receipts()
        except TimeoutError:
            raise AssertionError(
                f"{len(lagging)} messages the phones received and receipted stayed "
                f"{dict(Counter(lagging.values()))} in wahttp: {sorted(lagging)[:10]}"
            ) from None
        counts["receipts_delivered"] = sum(
            1 for m, (_, to) in accepted.items() if to != baileys_number and m in got
        )
        to_baileys = {m for m, (_, to) in accepted.items() if to == baileys_number}
        baileys_got: Counter[str] = Counter()
        try:
            async with asyncio.timeout(120):
                while not to_baileys <= set(baileys_got):
                    event = await baileys.next("message")
                    if not event["fromMe"] and event["stub"] is None:
                        baileys_got[event["id"]] += 1
        except TimeoutError:
            missing_b = to_baileys - set(baileys_got)
            seen = [e for e in baileys.of("message") if e["id"] in missing_b]
            routed = {m: m in sim.server.router.origins for m in missing_b}
            raise AssertionError(
                f"Baileys never decrypted {len(missing_b)} of {len(to_baileys)}: {seen[:6]} "
                f"routed={routed} {baileys_story()}"
            ) from None
        counts["baileys_received"] = sum(baileys_got.values())

        # Inbound: a webhook event for every message sent to our sessions, exactly once.
        def webhook_texts() -> Counter[str]:
            return Counter(
                r.json()["data"]["text"]
                for r in receiver.delivered()
                if r.json()["type"] == "message" and not r.json()["data"]["fromMe"]
            )

        await receiver.wait_for(lambda: inbound_texts <= set(webhook_texts()), timeout=120)
        # One event per message id (a text may be sent twice under two ids, e.g. final-b).
        per_id = Counter(
            r.json()["data"]["id"] for r in receiver.delivered() if r.json()["type"] == "message"
        )
        duplicates = {i: c for i, c in per_id.items() if c > 1}
        assert not duplicates, duplicates
        counts["webhook_messages"] = sum(webhook_texts().values())

        # 440 and 401 on sacrificial sessions: stop (never fight) and removal.
        replaced = await _pair(w, admin, "replaced")
        jid = (await w.status("replaced"))["jid"]
        await admin.post(f"/connections/{jid}/fail", json={"kind": "440"})
        await w.wait_state("replaced", "stopped")
        await _pair(w, admin, "unlinked")
        jid = (await w.status("unlinked"))["jid"]
        await admin.post(f"/connections/{jid}/fail", json={"kind": "401"})
        await w.wait_state("unlinked", "missing")
        del replaced

        counts["sessions_open"] = sum([(await w.status(s))["state"] == "open" for s in ids])
        print("\nsoak counts:", json.dumps(dict(sorted(counts.items()))))
        assert counts["sigkill"] >= KILLS
        assert counts["faults"] >= FAULTS
        assert counts["sessions_open"] == SESSIONS
    finally:
        if baileys is not None:
            await baileys.stop()
        await w.stop()
        await receiver.down()
        text = (tmp_path / "serve.log").read_text(errors="replace")
        assert "Traceback" not in text or "KeyboardInterrupt" in text, text[-4000:]
