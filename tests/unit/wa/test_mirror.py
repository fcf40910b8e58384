"""The folder mirror writing behind: the database first, the folder in batches, nothing lost."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from wahttp.wa.auth import MemoryAuthStore, multifile, new_creds
from wahttp.wa.auth import mirror as mirror_mod
from wahttp.wa.auth.bufferjson import js_json_loads
from wahttp.wa.auth.filenames import split_file_name
from wahttp.wa.auth.mirror import FolderMirror
from wahttp.wa.auth.multifile import AuthFolderError
from wahttp.wa.auth.store import KeyValue

SECRET = b"\x07" * 32


def folder_keys(path: Path) -> dict[str, dict[str, object]]:
    """The key files of a folder as category -> id -> value (no creds.json needed)."""
    keys: dict[str, dict[str, object]] = {}
    for name in os.listdir(path):
        split = split_file_name(name)
        if split is not None:
            keys.setdefault(split[0], {})[split[1]] = js_json_loads((path / name).read_text())
    return keys


class SlowFolder:
    """Wraps the folder writer: counts batches and holds each one until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.real = multifile._apply

    def __call__(
        self, path: Path, planned: Sequence[tuple[str, bytes | None]], *, durable: bool = True
    ) -> None:
        assert not durable  # written behind: no fsync (see mirror.py)
        self.batches.append([name for name, _ in planned])
        self.gate.wait(10)
        self.real(path, planned, durable=durable)

    async def in_flight(self, count: int) -> None:
        """Wait until `count` batches have reached the writer."""
        async with asyncio.timeout(5):
            while len(self.batches) < count:
                await asyncio.sleep(0.005)


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowFolder]:
    folder = SlowFolder()
    monkeypatch.setattr(mirror_mod, "_apply", folder)
    yield folder
    folder.gate.set()


async def test_write_behind_returns_before_the_folder_and_flush_catches_up(
    tmp_path: Path, slow: SlowFolder
) -> None:
    inner = MemoryAuthStore()
    mirror = FolderMirror(inner, tmp_path / "auth", write_behind=True)
    slow.gate.clear()  # the folder hangs: set() must not wait for it
    async with asyncio.timeout(5):
        for n in range(20):
            await mirror.set({"session": {"1.0": {"n": n}}, "pre-key": {str(n): {"n": n}}})
            if n == 0:
                await slow.in_flight(1)
    assert await inner.get("session", ["1.0"]) == {"1.0": {"n": 19}}
    assert mirror.pending > 0
    slow.gate.set()
    await mirror.flush()
    assert mirror.pending == 0
    # Twenty changes of one file went out in far fewer writes: the first, then one batch.
    assert len(slow.batches) == 2
    assert folder_keys(tmp_path / "auth") == await inner.all_keys()


async def test_creds_are_written_after_the_keys_of_a_batch(
    tmp_path: Path, slow: SlowFolder
) -> None:
    mirror = FolderMirror(MemoryAuthStore(), tmp_path, write_behind=True)
    slow.gate.clear()
    await mirror.set({"pre-key": {"0": {"n": 0}}})  # in flight, held at the gate
    await slow.in_flight(1)
    await mirror.save_creds(new_creds())
    await mirror.set({"pre-key": {"1": {"n": 1}}})
    slow.gate.set()
    await mirror.flush()
    assert slow.batches == [["pre-key-0.json"], ["pre-key-1.json", "creds.json"]]


async def test_a_failed_write_is_tried_again_and_never_logs_a_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "auth"
    blocker.write_text("not a folder")  # the folder cannot be created
    inner = MemoryAuthStore()
    mirror = FolderMirror(inner, blocker, write_behind=True)
    caplog.set_level(logging.WARNING, logger=mirror_mod.__name__)
    await mirror.set({"pre-key": {"1": {"private": SECRET}}})  # the database has it at once
    assert await inner.get("pre-key", ["1"]) == {"1": {"private": SECRET}}
    with pytest.raises(AuthFolderError):
        await mirror.flush()
    assert mirror.pending == 1
    assert "auth folder not written" in caplog.text
    assert SECRET.hex() not in caplog.text and "Bwc" not in caplog.text

    await mirror.set({"pre-key": {"1": {"private": b"\x08" * 32}}})  # replaces the queued one
    blocker.unlink()
    await mirror.flush()
    assert folder_keys(blocker) == {"pre-key": {"1": {"private": b"\x08" * 32}}}


async def test_the_writer_retries_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror_mod, "RETRY_FIRST", 0.05)
    blocker = tmp_path / "auth"
    blocker.write_text("x")
    mirror = FolderMirror(MemoryAuthStore(), blocker, write_behind=True)
    await mirror.set({"session": {"1.0": {"v": 1}}})
    await asyncio.sleep(0.1)
    blocker.unlink()
    async with asyncio.timeout(10):
        while not (blocker / "session-1.0.json").exists():
            await asyncio.sleep(0.02)
    assert js_json_loads((blocker / "session-1.0.json").read_text()) == {"v": 1}
    assert mirror.pending == 0


async def test_discard_and_clear_drop_what_is_queued(tmp_path: Path, slow: SlowFolder) -> None:
    mirror = FolderMirror(MemoryAuthStore(), tmp_path, write_behind=True)
    slow.gate.clear()
    await mirror.set({"pre-key": {"1": {"n": 1}}})  # in flight
    await slow.in_flight(1)
    await mirror.set({"pre-key": {"2": {"n": 2}}})  # queued
    releaser = asyncio.get_running_loop().call_later(0.05, slow.gate.set)
    await mirror.discard()  # waits for the write in flight, drops the queued one
    releaser.cancel()
    assert sorted(os.listdir(tmp_path)) == ["pre-key-1.json"]

    slow.gate.clear()
    await mirror.set({"pre-key": {"3": {"n": 3}}})
    await slow.in_flight(2)
    await mirror.set({"pre-key": {"4": {"n": 4}}})
    releaser = asyncio.get_running_loop().call_later(0.05, slow.gate.set)
    await mirror.clear()
    releaser.cancel()
    assert os.listdir(tmp_path) == []
    assert await mirror.all_keys() == {}
    assert mirror.pending == 0


async def test_write_through_raises_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "auth"
    blocker.write_text("x")
    mirror = FolderMirror(MemoryAuthStore(), blocker)
    with pytest.raises(AuthFolderError):
        await mirror.set({"pre-key": {"1": {"n": 1}}})


async def test_a_batch_delay_gathers_changes_and_flush_cuts_it_short(
    tmp_path: Path, slow: SlowFolder
) -> None:
    mirror = FolderMirror(MemoryAuthStore(), tmp_path, write_behind=True, batch_delay=30)
    for n in range(10):
        await mirror.set({"session": {"1.0": {"n": n}}, "pre-key": {str(n): {"n": n}}})
        await asyncio.sleep(0.01)
    assert slow.batches == []  # still gathering
    async with asyncio.timeout(5):  # not 30 s: flush does not wait out the delay
        await mirror.flush()
    assert len(slow.batches) == 1 and len(slow.batches[0]) == 11
    assert folder_keys(tmp_path)["session"] == {"1.0": {"n": 9}}

    await mirror.set({"pre-key": {"99": {"n": 99}}})
    async with asyncio.timeout(5):
        await mirror.discard()  # ends the writer's wait too
    assert len(slow.batches) == 1 and "pre-key-99.json" not in os.listdir(tmp_path)


async def test_a_large_change_is_written_before_the_call_returns(
    tmp_path: Path, slow: SlowFolder
) -> None:
    mirror = FolderMirror(MemoryAuthStore(), tmp_path, write_behind=True, batch_delay=30)
    await mirror.set({"session": {"1.0": {"n": 1}}})  # small: queued
    keys: dict[str, KeyValue | None] = {
        str(n): {"n": n} for n in range(mirror_mod.QUEUE_AT_MOST + 1)
    }
    async with asyncio.timeout(5):
        await mirror.set({"pre-key": keys})  # large: written at once, after what was queued
    assert mirror.pending == 0 and len(slow.batches) == 2
    assert slow.batches[0] == ["session-1.0.json"] and len(slow.batches[1]) == len(keys)
    assert len(folder_keys(tmp_path)["pre-key"]) == len(keys)
    assert folder_keys(tmp_path)["session"] == {"1.0": {"n": 1}}
