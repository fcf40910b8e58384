"""Bad settings stop `wahttp` with one line per setting, naming it, never its value; exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ADMIN_KEY = "Adm1nKeyThatIsLongEnough-KEYTAIL"  # 32 characters, a valid admin key


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WAHTTP_", "DATABASE_"))}
    clean.pop("PORT", None)
    clean.pop("HOST", None)
    clean["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/never"  # never reached
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "wahttp.cli", *(args or ("serve",))],
        env=clean,
        check=False,
        cwd=tmp_path,  # no .env file here
        capture_output=True,
        text=True,
        timeout=60,
    )


CASES = [
    # (environment, the settings named, secret values that must not appear)
    ({"WAHTTP_API_KEY": "short-Secret-9f"}, ["WAHTTP_API_KEY"], ["short-Secret-9f"]),
    ({"WAHTTP_API_KEY": ADMIN_KEY + " "}, ["WAHTTP_API_KEY"], [ADMIN_KEY]),
    ({"WAHTTP_API_KEY": " " + ADMIN_KEY}, ["WAHTTP_API_KEY"], [ADMIN_KEY]),
    (
        {"WAHTTP_API_KEY": ADMIN_KEY[:20] + "\x07" + ADMIN_KEY[20:]},
        ["WAHTTP_API_KEY"],
        [ADMIN_KEY[:20]],
    ),
    ({"PORT": "abc", "WAHTTP_API_KEY": ADMIN_KEY}, ["PORT"], [ADMIN_KEY, "KEYTAIL"]),
    (
        {"WAHTTP_WEBHOOK_URL": "https://hooks.example/x", "WAHTTP_WEBHOOK_SECRET": "tinySecretQ"},
        ["WAHTTP_WEBHOOK_SECRET"],
        ["tinySecretQ"],
    ),
    (  # the model-level check once printed every setting's value, the admin key's end too
        {"WAHTTP_WEBHOOK_URL": "https://hooks.example/x", "WAHTTP_API_KEY": ADMIN_KEY},
        ["WAHTTP_WEBHOOK_SECRET"],
        [ADMIN_KEY, "KEYTAIL"],
    ),
    (
        {
            "PORT": "70000",
            "WAHTTP_API_KEY": "short-Secret-9f",
            "WAHTTP_WEBHOOK_SECRET": "tinySecretQ",
            "WAHTTP_LOG_LEVEL": "chatty",
        },
        ["PORT", "WAHTTP_API_KEY", "WAHTTP_WEBHOOK_SECRET", "WAHTTP_LOG_LEVEL"],
        ["short-Secret-9f", "tinySecretQ"],
    ),
    (
        {"WAHTTP_ENCRYPTION_KEY": "main:NotAKeyAtAllButSecret", "WAHTTP_API_KEY": ADMIN_KEY},
        ["WAHTTP_ENCRYPTION_KEY"],
        ["NotAKeyAtAllButSecret", ADMIN_KEY],
    ),
]


@pytest.mark.parametrize(("env", "named", "secrets"), CASES)
def test_serve_refuses_bad_settings_in_one_line_each(
    tmp_path: Path, env: dict[str, str], named: list[str], secrets: list[str]
) -> None:
    done = run_cli(tmp_path, env)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "pydantic" not in output, output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(named), output
    for line, name in zip(sorted(lines), sorted(named), strict=True):
        assert line.startswith("wahttp: configuration error: ") and name in line, output
    for secret in secrets:
        assert secret not in output, output


@pytest.mark.parametrize(
    "args",
    [("auth", "export", "alice", "out"), ("auth", "import", "folder"), ("auth", "rotate-key")],
)
def test_auth_commands_refuse_bad_settings_too(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = run_cli(tmp_path, {"WAHTTP_API_KEY": ADMIN_KEY + "\n", "PORT": "x"}, *args)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and ADMIN_KEY not in output, output
    assert sorted(line.split(":")[2].strip() for line in done.stderr.splitlines()) == [
        "PORT",
        "WAHTTP_API_KEY",
    ]


def test_a_bad_log_level_option_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(tmp_path, {}, "--log-level", "chatty", "serve")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "--log-level" in done.stderr
