"""Hostile input against the service: NUL and control characters, integers past int64, a race
on one session id. Every one is a 4xx JSON error, and none logs a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from hostiletools import assert_client_error, no_tracebacks
from servicetools import Service

INT64_MAX = 2**63 - 1
ARABIC_INDIC_NUMBER = "1" + "".join(chr(0x0660 + int(d)) for d in "5551234567")


@pytest.fixture
async def anonymous(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with service.http(anonymous=True) as client:
        yield client


# Percent-encoded in the path or the query: these reach the app decoded.
URL_CASES = [
    ("GET", "/sessions/x%00/status"),
    ("DELETE", "/sessions/%00"),
    ("GET", "/sessions/alice%00/qr"),
    ("GET", "/sessions/hostile/messages/3EB0%00AB"),
    ("POST", "/sessions/hostile/messages/3EB0%00AB/read"),
    ("GET", "/sessions/hostile/status%0a"),
    ("GET", "/sessions/hostile/webhook/deliveries?status=dead%00"),
    ("GET", "/sessions?x=%00"),
    ("GET", "/keys?session=hostile%00"),
    ("GET", "/health?probe=%01"),
    ("GET", "/sessions/a%7fb/status"),
]


@pytest.mark.parametrize(("method", "url"), URL_CASES)
async def test_control_characters_in_the_url_are_400_with_or_without_a_key(
    api: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    url: str,
) -> None:
    assert (await api.post("/sessions", json={"id": "hostile"})).status_code == 201
    with no_tracebacks(caplog):
        for client in (anonymous, api):
            error = assert_client_error(await client.request(method, url), 400)
            assert error["code"] == "invalid_request"
            assert "control character" in str(error["message"])
    # The good URL next to it still works.
    assert (await api.get("/sessions/hostile/status")).status_code == 200


BODY_CASES = [
    ("POST", "/sessions", {"id": "nul-push", "pushName": "Al\u0000ice"}),
    ("POST", "/sessions", {"id": "ctl-push", "pushName": "Al\u0007ice"}),
    ("POST", "/sessions", {"id": "nul\u0000id"}),
    ("POST", "/keys", {"session": "hostile", "name": "crm\u0000"}),
    ("POST", "/keys", {"session": "hostile", "name": "crm\u001b[31m"}),
    ("POST", "/sessions/hostile/send-message", {"to": "+15551234567", "message": "hi\u0000"}),
    ("POST", "/sessions/hostile/send-message", {"to": "+1555123\u00004567", "message": "hi"}),
    ("POST", "/sessions/hostile/pair-request", {"number": "+1555\u00001234567"}),
    # Digits of another script pass str.isdigit() but are no phone number.
    (
        "POST",
        "/sessions/hostile/pair-request",
        {"number": "+\u0661\u0665\u0665\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667"},
    ),
    (
        "PUT",
        "/sessions/hostile/webhook",
        {"url": "https://example.com/h", "secret": "s" * 20 + "\u0000"},
    ),
]


@pytest.mark.parametrize(("method", "url", "body"), BODY_CASES)
async def test_nul_and_control_characters_in_bodies_are_400(
    api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    url: str,
    body: dict[str, str],
) -> None:
    assert (await api.post("/sessions", json={"id": "hostile"})).status_code == 201
    with no_tracebacks(caplog):
        assert_client_error(await api.request(method, url, json=body), 400)
    listed = {s["id"] for s in (await api.get("/sessions")).json()}
    assert listed == {"hostile"}


async def test_text_may_hold_newlines_and_tabs_but_names_may_not(api: httpx.AsyncClient) -> None:
    assert (await api.post("/sessions", json={"id": "texts"})).status_code == 201
    resp = await api.post(
        "/sessions/texts/send-message", json={"to": "+15551234567", "message": "a\n\tb\r\n"}
    )
    assert resp.status_code == 409, resp.text  # valid input: the session is simply not open
    resp = await api.post("/sessions", json={"id": "tabbed", "pushName": "Al\tice"})
    assert_client_error(resp, 400)
    resp = await api.post("/sessions", json={"id": "named", "pushName": "Zoë 👋"})
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("value", [str(INT64_MAX + 1), "99999999999999999999999", "-1", "0"])
async def test_integers_beyond_int64_are_400(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    assert (await api.post("/sessions", json={"id": "ints"})).status_code == 201
    with no_tracebacks(caplog):
        resp = await api.get(f"/sessions/ints/webhook/deliveries?before={value}")
        assert_client_error(resp, 400)
        resp = await api.post(f"/sessions/ints/webhook/deliveries/{value}/retry")
        assert_client_error(resp, 400)
    # int64's largest value itself is fine: nothing there.
    resp = await api.get(f"/sessions/ints/webhook/deliveries?before={INT64_MAX}")
    assert resp.status_code == 200 and resp.json() == []
    resp = await api.post(f"/sessions/ints/webhook/deliveries/{INT64_MAX}/retry")
    assert_client_error(resp, 404)


async def test_one_id_created_at_once_by_many_is_one_201_and_409s(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=service.url,
        headers={"X-Api-Key": service.admin_key() or ""},
        timeout=60,
        limits=limits,
    ) as client:
        with no_tracebacks(caplog):
            answers = await asyncio.gather(
                *(client.post("/sessions", json={"id": "racy"}) for _ in range(150))
            )
        codes = [r.status_code for r in answers]
        assert codes.count(201) == 1, sorted(set(codes))
        assert codes.count(409) == len(codes) - 1, sorted(set(codes))
        for resp in answers:
            if resp.status_code == 409:
                assert resp.json()["error"]["code"] == "session_exists"
        listed = (await client.get("/sessions")).json()
        assert [s["id"] for s in listed] == ["racy"]


@pytest.mark.parametrize(
    ("url", "raw"),
    [
        ("/sessions", rb'{"id": "lone", "pushName": "a\ud800b"}'),
        ("/sessions/hostile/send-message", rb'{"to": "+15551234567", "message": "a\udfffb"}'),
        ("/keys", rb'{"session": "hostile", "name": "\u0000"}'),
    ],
)
async def test_lone_surrogates_and_escaped_nul_in_json_are_400(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, url: str, raw: bytes
) -> None:
    assert (await api.post("/sessions", json={"id": "hostile"})).status_code == 201
    with no_tracebacks(caplog):
        resp = await api.post(url, content=raw, headers={"Content-Type": "application/json"})
        assert_client_error(resp, 400)


@pytest.mark.parametrize(
    ("method", "url", "raw"),
    [
        ("POST", "/sessions", b'{"id": "\xff\xfe"}'),  # not UTF-8
        ("POST", "/sessions", b"[" * 50_000 + b"]" * 50_000),  # nested past the recursion limit
        ("POST", "/sessions", b'{"id": "x", "id": 5}'),
        ("GET", "/sessions/%ff%fe/status", b""),
        ("GET", "/sessions/hostile/webhook/deliveries?limit=1e9&before=0x10", b""),
        ("POST", "/keys", b'{"session": "hostile", "name": "' + b"n" * 101 + b'"}'),
    ],
)
async def test_malformed_requests_are_4xx_without_a_traceback(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, method: str, url: str, raw: bytes
) -> None:
    assert (await api.post("/sessions", json={"id": "hostile"})).status_code == 201
    with no_tracebacks(caplog):
        resp = await api.request(
            method, url, content=raw or None, headers={"Content-Type": "application/json"}
        )
        assert_client_error(resp)
