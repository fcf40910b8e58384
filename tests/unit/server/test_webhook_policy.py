"""The webhook host policy: allow and deny lists of names, wildcard suffixes and networks."""

from __future__ import annotations

import pytest

from wahttp.server.webhooks.urls import WebhookPolicy, WebhookPolicyError


def test_no_lists_allow_everything() -> None:
    WebhookPolicy.parse(None, None).check("https://anything.example/hook")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
        "http://[::1]:8080/",
        "http://meta.internal/",
    ],
)
def test_deny_list(url: str) -> None:
    policy = WebhookPolicy.parse(None, "10.0.0.0/8, 169.254.0.0/16, ::1/128, *.internal")
    with pytest.raises(WebhookPolicyError, match="denied"):
        policy.check(url)
    policy.check("https://hooks.example.com/x")


def test_allow_list_with_deny_taking_precedence() -> None:
    policy = WebhookPolicy.parse("*.example.com, 127.0.0.1", "bad.example.com")
    policy.check("https://hooks.example.com/x")
    policy.check("http://127.0.0.1:9000/hook")
    with pytest.raises(WebhookPolicyError, match="not in"):
        policy.check("https://example.org/")
    with pytest.raises(WebhookPolicyError, match="denied"):
        policy.check("https://BAD.example.com./x")
