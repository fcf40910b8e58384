"""The generated admin key file of server/auth.py and the key checks that need no database."""

from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

import pytest

from wahttp.server import auth
from wahttp.server.settings import Settings


def test_the_key_file_is_made_once_0600_and_only_its_path_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "data" / "admin-api-key"
    key = auth.admin_key_from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(key) >= 40 and path.read_text() == key + "\n"
    assert auth.admin_key_from_file(path) == key  # the same key on every start
    assert str(path) in caplog.text and key not in caplog.text
    assert [p.name for p in path.parent.iterdir()] == ["admin-api-key"]  # no temp file left


def test_a_key_file_open_to_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "admin-api-key"
    path.write_text("k" * 30 + "\n")
    path.chmod(0o644)
    assert auth.admin_key_from_file(path) == "k" * 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_short_key_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "admin-api-key"
    path.write_text("tiny-secret\n")
    with pytest.raises(RuntimeError) as caught:
        auth.admin_key_from_file(path)
    assert "tiny-secret" not in str(caught.value)


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "admin-api-key"
    keys: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(auth.admin_key_from_file(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert path.read_text().strip() == keys[0]


async def test_identify_compares_digests() -> None:
    admin = "a" * 32
    checker = auth.ApiAuth(None, admin)
    assert await checker.identify(admin) == auth.ADMIN
    assert await checker.identify("a" * 31) is None
    assert await checker.identify("wak_" + "x" * 43) is None  # no key store: no session keys
    assert await checker.identify("a" * 10_000) is None
    assert admin not in repr(checker)


def test_settings_for_auth() -> None:
    settings = Settings(_env_file=None, WAHTTP_API_KEY="k" * 24, WAHTTP_AUTH=" Off ")
    assert settings.auth == "off"
    assert settings.api_key is not None and "k" * 24 not in repr(settings)
    assert Settings(_env_file=None, WAHTTP_API_KEY="").api_key is None  # empty: unset
    with pytest.raises(ValueError):
        Settings(_env_file=None, WAHTTP_API_KEY="short")
    with pytest.raises(ValueError):
        Settings(_env_file=None, WAHTTP_AUTH="maybe")
    defaults = Settings(_env_file=None)
    assert (defaults.auth, defaults.send_rate, defaults.send_burst) == ("on", 20, 5)
    assert defaults.max_body_bytes == 256 * 1024
