"""Schemathesis against the live REST service: every operation of its OpenAPI schema, fuzzed.

The service runs in-process on loopback (tests/servicetools.Service) against the simulator and
a fresh schema of the machine's PostgreSQL. Each operation gets positive and negative (schema-
violating) requests, many aimed at a session that exists and some with bodies that pass
validation, so the handlers run past the 404 and the 400. Every response must be no server
error and must conform to the schema: a documented status code, the documented content type,
headers and body; schema-violating requests must be refused with a 4xx.

Schemathesis is synchronous (requests), so it runs in a worker thread while the test's event
loop serves the app. Deterministic (`derandomize=True`) and bounded per operation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from servicetools import Service

from wahttp.server.app import create_app
from wahttp.server.settings import Settings

MAX_EXAMPLES = 30
KNOWN_SESSION = "fuzz-known"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


_NUMBERS = st.from_regex(r"\+?[1-9][0-9]{6,14}", fullmatch=True)
# Bodies that pass validation, so the handlers behind it run too (against the known session):
# a pairing code request reaches the simulator, a send finds the session not linked, a key is
# made, a webhook is set.
PLAUSIBLE_BODIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "POST /sessions/{session_id}/pair-request": st.fixed_dictionaries({"number": _NUMBERS}),
    "POST /sessions/{session_id}/send-message": st.fixed_dictionaries(
        {
            "to": _NUMBERS | _NUMBERS.map(lambda n: n.lstrip("+") + "@s.whatsapp.net"),
            "message": st.text(min_size=1, max_size=200),
        }
    ),
    "PUT /sessions/{session_id}/webhook": st.fixed_dictionaries(
        {"url": st.sampled_from(("https://example.com/hook", "http://127.0.0.1:9/hook", None))},
        optional={"secret": st.text(max_size=80)},
    ),
    "POST /keys": st.fixed_dictionaries(
        {"session": st.just(KNOWN_SESSION)}, optional={"name": st.text(max_size=100)}
    ),
}


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the app's schema, read without starting it."""
    offline = Settings(
        _env_file=None, DATABASE_URL="postgresql://unused/unused", WAHTTP_API_KEY="x" * 32
    )
    paths: dict[str, dict[str, Any]] = create_app(offline).openapi()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def _auth(service: Service) -> dict[str, str]:
    key = service.admin_key()
    return {"X-Api-Key": key} if key else {}


def _fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any], base_url: str, auth: dict[str, str]
) -> None:
    """Run the Hypothesis test of one operation (in a worker thread: it blocks on HTTP)."""
    strategies = [
        operation.as_strategy(generation_mode=mode)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    known: dict[str, Any] = {}
    if any(p.name == "session_id" for p in operation.path_parameters):
        known = {"session_id": KNOWN_SESSION}
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=known)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    bodies = PLAUSIBLE_BODIES.get(operation.label)
    if bodies is not None:
        strategies.append(
            bodies.flatmap(lambda body: operation.as_strategy(path_parameters=known, body=body))
        )
    http = requests.Session()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case: Case[Any]) -> None:
        if case.path_parameters and case.path_parameters.get("session_id") == KNOWN_SESSION:
            # It may have been deleted by an earlier example: bring it back (409 if it exists).
            http.post(f"{base_url}/sessions", json={"id": KNOWN_SESSION}, headers=auth, timeout=30)
        response = case.call(base_url=base_url, session=http, headers=auth, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=auth)

    with http:
        run()


@pytest.mark.parametrize("db_dsn", ["postgres"], indirect=True)
@pytest.mark.parametrize(("method", "path"), _operations())
async def test_operation_conforms_to_schema(service: Service, method: str, path: str) -> None:
    async with service.http() as api:
        resp = await api.post("/sessions", json={"id": KNOWN_SESSION})
        assert resp.status_code == 201, resp.text
        spec = (await api.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    operation = schema[path][method]
    await asyncio.to_thread(_fuzz, operation, service.url, _auth(service))


@pytest.mark.parametrize("db_dsn", ["postgres"], indirect=True)
async def test_every_route_is_in_the_schema(service: Service) -> None:
    """The parametrization above covers the running app's schema exactly."""
    async with httpx.AsyncClient(base_url=service.url) as anonymous:
        paths: dict[str, dict[str, Any]] = (await anonymous.get("/openapi.json")).json()["paths"]
    assert sorted((m.upper(), p) for p, ops in paths.items() for m in ops) == sorted(_operations())


_CONTROL = st.characters(max_codepoint=0x1F) | st.just("\x7f")
_HOSTILE = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(alphabet="abc019-_.", max_size=8),
    _CONTROL,
    st.text(max_size=8),
)
_HOSTILE_URLS = [
    ("GET", "/sessions/{}/status"),
    ("DELETE", "/sessions/{}"),
    ("GET", "/sessions/" + KNOWN_SESSION + "/messages/{}"),
    ("GET", "/sessions/" + KNOWN_SESSION + "/webhook/deliveries?status={}"),
    ("GET", "/keys?session={}"),
]


def _hostile(base_url: str, auth: dict[str, str]) -> None:
    """Hypothesis over hostile URLs (in a worker thread, like _fuzz)."""
    from urllib.parse import quote

    base = f"/sessions/{KNOWN_SESSION}/webhook/deliveries"
    with httpx.Client(base_url=base_url, timeout=30) as http:

        @settings(max_examples=60, deadline=None, derandomize=True, database=None)
        @given(value=_HOSTILE, target=st.sampled_from(_HOSTILE_URLS), keyed=st.booleans())
        def urls(value: str, target: tuple[str, str], keyed: bool) -> None:
            method, template = target
            url = template.format(quote(value, safe=""))
            resp = http.request(method, url, headers=auth if keyed else {})
            assert resp.status_code == 400, (method, url, resp.text)
            assert resp.json()["error"]["code"] == "invalid_request"

        @settings(max_examples=20, deadline=None, derandomize=True, database=None)
        @given(n=st.integers(min_value=2**63, max_value=2**200) | st.integers(max_value=0))
        def integers(n: int) -> None:
            assert http.get(f"{base}?before={n}", headers=auth).status_code == 400
            assert http.post(f"{base}/{n}/retry", headers=auth).status_code == 400

        urls()
        integers()


@pytest.mark.parametrize("db_dsn", ["postgres"], indirect=True)
async def test_hostile_urls_and_integers_are_400(service: Service) -> None:
    """Control characters anywhere in a URL, integers past int64: 400, with or without a key."""
    async with service.http() as api:
        assert (await api.post("/sessions", json={"id": KNOWN_SESSION})).status_code == 201
    await asyncio.to_thread(_hostile, service.url, _auth(service))
