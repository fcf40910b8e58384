"""pair-request under concurrency: one pending code per session and number, and a rate limit
on new codes (WAHTTP_PAIR_BURST, WAHTTP_PAIR_RATE)."""

from __future__ import annotations

import asyncio

import httpx
from hostiletools import assert_client_error
from servicetools import wait_status
from simtools import new_phone


async def test_concurrent_pair_requests_share_one_code_and_it_links(
    api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    assert (await api.post("/sessions", json={"id": "pairs"})).status_code == 201
    number = await new_phone(admin)
    answers = await asyncio.gather(
        *(
            api.post("/sessions/pairs/pair-request", json={"number": f"+{number}"})
            for _ in range(12)
        )
    )
    assert [r.status_code for r in answers] == [200] * 12, [r.text for r in answers]
    codes = {r.json()["pairingCode"] for r in answers}
    assert len(codes) == 1, codes
    # Asked again later, still the same: the user may be typing it.
    again = await api.post("/sessions/pairs/pair-request", json={"number": number})
    assert again.status_code == 200 and again.json()["pairingCode"] in codes

    entered = await admin.post(f"/phones/{number}/pairing-code", json={"code": codes.pop()})
    assert entered.status_code == 200, entered.text
    status = await wait_status(api, "pairs", "open")
    assert status["jid"].startswith(number + ":")


async def test_another_number_replaces_the_pending_code(
    api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    assert (await api.post("/sessions", json={"id": "switch"})).status_code == 201
    wrong, right = await new_phone(admin), await new_phone(admin)
    first = await api.post("/sessions/switch/pair-request", json={"number": wrong})
    assert first.status_code == 200, first.text
    second = await api.post("/sessions/switch/pair-request", json={"number": right})
    assert second.status_code == 200, second.text
    code = second.json()["pairingCode"]
    assert code != first.json()["pairingCode"]
    entered = await admin.post(f"/phones/{right}/pairing-code", json={"code": code})
    assert entered.status_code == 200, entered.text
    await wait_status(api, "switch", "open")


async def test_new_codes_are_rate_limited_per_session(api: httpx.AsyncClient) -> None:
    for session_id in ("limited", "other"):
        assert (await api.post("/sessions", json={"id": session_id})).status_code == 201
    numbers = [f"+1555000{i:04d}" for i in range(4)]
    for number in numbers[:3]:  # WAHTTP_PAIR_BURST (3) new codes at once
        resp = await api.post("/sessions/limited/pair-request", json={"number": number})
        assert resp.status_code == 200, resp.text
    pending = resp.json()["pairingCode"]
    refused = await api.post("/sessions/limited/pair-request", json={"number": numbers[3]})
    error = assert_client_error(refused, 429)
    assert error["code"] == "rate_limited" and "pairing codes" in str(error["message"])
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 30 and error["retry_after"] == retry_after
    # The pending code costs nothing: it is answered again.
    again = await api.post("/sessions/limited/pair-request", json={"number": numbers[2]})
    assert again.status_code == 200 and again.json()["pairingCode"] == pending
    # Another session has its own budget.
    other = await api.post("/sessions/other/pair-request", json={"number": numbers[3]})
    assert other.status_code == 200, other.text
