"""Baileys' `useMultiFileAuthState` folder, read and written byte for byte as the original does.

A folder holds `creds.json` plus one `<category>-<id>.json` file per key (ids in fixFileName
form, as our stores keep them). Baileys reads a file with `JSON.parse(text, BufferJSON.reviver)`
and writes it with `JSON.stringify(value, BufferJSON.replacer)`; bufferjson.py's `js_json_loads`
and `js_json_dumps` are those two calls, so a value read here and written back gives the same
bytes.

Reading never follows a symlink inside the folder and refuses oversized files; writing is atomic
per file (temporary file, fsync, rename) with mode 0600, in a folder created with mode 0700.

Given a Sealer (sealing.py), every file is written as a sealed envelope of exactly that text,
bound to the session (by default the folder's name), category and key id; Baileys cannot load
such a folder. Reading opens sealed files and takes clear ones as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wahttp.wa.auth.bufferjson import js_json_dumps, js_json_loads, writable
from wahttp.wa.auth.creds import Creds
from wahttp.wa.auth.filenames import (
    CREDS_FILE,
    KNOWN_CATEGORIES,
    file_key_id,
    file_name,
    split_file_name,
)
from wahttp.wa.auth.sealing import SealContext, Sealer, SealError, is_sealed, open_sealed
from wahttp.wa.auth.store import AuthStore
from wahttp.wa.errors import StoreError

__all__ = [
    "MAX_FILE_SIZE",
    "AuthFolderError",
    "FolderState",
    "SkippedFile",
    "export_folder",
    "folder_session_id",
    "import_folder",
    "key_file_name",
    "read_folder",
    "write_folder",
]

MAX_FILE_SIZE = 10 * 1024 * 1024  # far above any real key file (sessions are a few KiB)
_NAME_MAX = 255  # bytes in one file name on common file systems
_TMP_PREFIX = ".wahttp-"
_TMP_SUFFIX = ".tmp"
_KNOWN = frozenset(KNOWN_CATEGORIES)


class AuthFolderError(StoreError):
    """A Baileys auth folder could not be read or written (the message names the file)."""


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A folder entry that read_folder did not load, and why."""

    name: str
    reason: str


@dataclass(slots=True)
class FolderState:
    """What a Baileys auth folder holds.

    `creds_json` is creds.json exactly as Baileys revives it (key order kept), for a
    byte-identical rewrite; `creds` is the same data as our model. `keys` maps category ->
    file-form id -> value (BufferJSON revived, otherwise the parsed JSON untouched).
    """

    creds: Creds
    creds_json: dict[str, Any]
    keys: dict[str, dict[str, Any]]
    skipped: list[SkippedFile] = field(default_factory=list)


# --- reading a folder -------------------------------------------------------------------------


def folder_session_id(path: Path) -> str:
    """The session a folder belongs to: its name (symlinks not followed, '.' resolved)."""
    return Path(os.path.abspath(path)).name


def read_folder(
    path: Path, *, sealer: Sealer | None = None, session_id: str | None = None
) -> FolderState:
    """Read a Baileys auth folder; unknown entries are listed in `skipped`, not lost silently.

    Sealed files are opened with `sealer`, as files of `session_id` (default: the folder's
    name). Raises AuthFolderError when the folder or creds.json is missing, a file is not
    valid JSON, is a symlink, is larger than MAX_FILE_SIZE, or is sealed and cannot be opened.
    """
    owner = folder_session_id(path) if session_id is None else session_id
    creds_json: Any = None
    keys: dict[str, dict[str, Any]] = {}
    skipped: list[SkippedFile] = []
    with _folder_fd(path, create=False) as dir_fd:
        for entry in _entries(path, dir_fd):
            name = entry.name
            split = None if name == CREDS_FILE else split_file_name(name)
            if name != CREDS_FILE and split is None:
                skipped.append(SkippedFile(name, "not a Baileys auth file"))
                continue
            if entry.is_symlink():
                raise AuthFolderError(f"{path / name}: is a symlink; refusing to follow it")
            if not entry.is_file(follow_symlinks=False):
                if name == CREDS_FILE:
                    raise AuthFolderError(f"{path / name}: not a regular file")
                skipped.append(SkippedFile(name, "not a regular file"))
                continue
            value = _read_json(path, dir_fd, name)
            if is_sealed(value):
                context = SealContext(owner, *split) if split else SealContext(owner)
                value = _open_file(path / name, sealer, value, context)
            if not writable(value):
                raise AuthFolderError(
                    f"{path / name}: an object typed 'Buffer' without its bytes (Baileys reads"
                    " it but cannot write it back either)"
                )
            if split is None:
                creds_json = value
            elif value is None:
                skipped.append(SkippedFile(name, "holds null, which Baileys reads as absent"))
            else:
                keys.setdefault(split[0], {})[split[1]] = value
    if creds_json is None:
        raise AuthFolderError(f"{path / CREDS_FILE}: missing; not a Baileys auth folder")
    if not isinstance(creds_json, dict):
        raise AuthFolderError(f"{path / CREDS_FILE}: not a JSON object")
    try:
        creds = Creds.from_json(creds_json)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else type(exc).__name__
        raise AuthFolderError(f"{path / CREDS_FILE}: not valid Baileys creds ({detail})") from exc
    return FolderState(creds=creds, creds_json=creds_json, keys=keys, skipped=skipped)


@contextlib.contextmanager
def _folder_fd(path: Path, *, create: bool) -> Iterator[int]:
    """An fd on the folder itself (a symlinked folder path is the user's choice and is fine);
    files are then opened relative to it, so a swapped path cannot redirect them."""
    if create:
        _make_folder(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise AuthFolderError(f"{path}: auth folder does not exist") from exc
    except NotADirectoryError as exc:
        raise AuthFolderError(f"{path}: not a directory") from exc
    except OSError as exc:
        raise AuthFolderError(f"{path}: cannot open the auth folder ({exc.strerror})") from exc
    try:
        yield fd
    finally:
        os.close(fd)


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    except OSError as exc:
        raise AuthFolderError(f"{path}: cannot create the auth folder ({exc.strerror})") from exc
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def _entries(path: Path, dir_fd: int) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(dir_fd) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise AuthFolderError(f"{path}: cannot list the auth folder ({exc.strerror})") from exc


def _read_json(path: Path, dir_fd: int, name: str) -> Any:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise AuthFolderError(f"{path / name}: cannot open ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AuthFolderError(f"{path / name}: not a regular file")
        if info.st_size > MAX_FILE_SIZE:
            raise AuthFolderError(f"{path / name}: larger than {MAX_FILE_SIZE} bytes; refused")
        raw = _read_all(fd)
    except OSError as exc:
        raise AuthFolderError(f"{path / name}: cannot read ({exc.strerror})") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_SIZE:
        raise AuthFolderError(f"{path / name}: larger than {MAX_FILE_SIZE} bytes; refused")
    # As readFile(..., 'utf-8'): malformed UTF-8 becomes U+FFFD rather than failing.
    text = raw.decode("utf-8", errors="replace")
    try:
        return js_json_loads(text)
    except ValueError as exc:  # never chained: a JSONDecodeError holds the whole text
        if isinstance(exc, json.JSONDecodeError):
            where = f"at line {exc.lineno} column {exc.colno}"
        else:
            where = str(exc)  # "JSON nested too deeply"
        raise AuthFolderError(f"{path / name}: malformed JSON ({where})") from None


def _open_file(file: Path, sealer: Sealer | None, envelope: Any, context: SealContext) -> Any:
    try:
        text = open_sealed(sealer, envelope, context).decode("utf-8")
        return js_json_loads(text)
    except SealError as exc:
        raise AuthFolderError(f"{file}: {exc}") from None
    except ValueError:  # not UTF-8 or not JSON inside a seal that authenticated
        raise AuthFolderError(f"{file}: the sealed content is not valid JSON") from None


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= MAX_FILE_SIZE:
        chunk = os.read(fd, min(1 << 20, MAX_FILE_SIZE + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


# --- writing a folder -------------------------------------------------------------------------

# One planned file: its name and new bytes, or None to delete it.
_Planned = tuple[str, bytes | None]


def key_file_name(category: str, key_id: str) -> str:
    """The file for a key whose id is in file-name form; ValueError if it cannot round-trip."""
    if category not in _KNOWN:
        raise ValueError(f"unknown key category {category!r}")
    if not isinstance(key_id, str) or not key_id:
        raise ValueError(f"{category}: key ids are non-empty strings")
    if file_key_id(key_id) != key_id:
        raise ValueError(f"{category}: key id {key_id!r} is not in file-name form (file_key_id)")
    if "\x00" in key_id or os.sep in key_id:
        raise ValueError(f"{category}: key id {key_id!r} cannot be a file name")
    name = file_name(category, key_id)
    if split_file_name(name) != (category, key_id):
        raise ValueError(f"{category}: key id {key_id!r} would read back as another category")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{category}: key id {key_id!r} holds a lone surrogate") from None
    if len(encoded) > _NAME_MAX:
        raise ValueError(f"{category}: key id {key_id!r} makes a file name over 255 bytes")
    return name


def _encode(value: Any, sealer: Sealer | None = None, context: SealContext | None = None) -> bytes:
    data = js_json_dumps(value).encode("utf-8")
    if sealer is None or context is None:
        return data
    return js_json_dumps(sealer.seal(data, context)).encode("utf-8")


def _plan_keys(
    keys: Mapping[str, Mapping[str, Any]], sealer: Sealer | None = None, session_id: str = ""
) -> list[_Planned]:
    return [
        (
            key_file_name(category, key_id),
            None
            if value is None
            else _encode(value, sealer, SealContext(session_id, category, key_id)),
        )
        for category, values in keys.items()
        for key_id, value in values.items()
    ]


def _creds_object(creds: Creds | Mapping[str, Any]) -> Mapping[str, Any]:
    return creds.to_json() if isinstance(creds, Creds) else creds


def write_folder(
    path: Path,
    creds: Creds | Mapping[str, Any] | None,
    keys: Mapping[str, Mapping[str, Any]],
    *,
    prune: bool = False,
    sealer: Sealer | None = None,
    session_id: str | None = None,
) -> None:
    """Write creds.json and one file per key, each as Baileys' writeData would write it.

    `creds` is a Creds or a creds.json object (such as FolderState.creds_json, whose key order
    is then kept), or None to delete creds.json. A key whose value is None has its file
    deleted. With `prune`, Baileys auth files in the folder that are not part of this state are
    deleted; other files are never touched. With `sealer` every file is sealed as a file of
    `session_id` (default: the folder's name). Everything is validated before the first write
    (ValueError/TypeError); I/O failures raise AuthFolderError. Key files are written before
    creds.json.
    """
    owner = folder_session_id(path) if session_id is None else session_id
    planned = _plan_keys(keys, sealer, owner)
    if creds is None:
        planned.append((CREDS_FILE, None))
    else:
        planned.append((CREDS_FILE, _encode(_creds_object(creds), sealer, SealContext(owner))))
    _apply(path, planned, prune=prune)


def _apply(
    path: Path, planned: Sequence[_Planned], *, prune: bool = False, durable: bool = True
) -> None:
    """Write (or delete) files atomically; `durable=False` skips the fsyncs (a file is then
    complete or absent after a process crash, but may be empty after an OS crash)."""
    with _folder_fd(path, create=True) as dir_fd:
        for name, data in planned:
            if data is None:
                _unlink(path, dir_fd, name)
            else:
                _write_atomic(path, dir_fd, name, data, durable=durable)
        if prune:
            keep = {name for name, data in planned if data is not None}
            for name in _auth_file_names(path, dir_fd):
                if name not in keep:
                    _unlink(path, dir_fd, name)
        if durable:
            _fsync_dir(path, dir_fd)


def _write_atomic(path: Path, dir_fd: int, name: str, data: bytes, *, durable: bool) -> None:
    tmp = f"{_TMP_PREFIX}{secrets.token_hex(8)}{_TMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise AuthFolderError(f"{path / name}: cannot write ({exc.strerror})") from exc


def _unlink(path: Path, dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise AuthFolderError(f"{path / name}: cannot delete ({exc.strerror})") from exc


def _fsync_dir(path: Path, dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        raise AuthFolderError(f"{path}: cannot sync the auth folder ({exc.strerror})") from exc


def _auth_file_names(path: Path, dir_fd: int) -> list[str]:
    """creds.json and the key files in the folder (directories excluded)."""
    return [
        e.name
        for e in _entries(path, dir_fd)
        if (e.name == CREDS_FILE or split_file_name(e.name) is not None)
        and not e.is_dir(follow_symlinks=False)
    ]


def _clear(path: Path) -> None:
    if not path.exists():
        return
    with _folder_fd(path, create=False) as dir_fd:
        for name in _auth_file_names(path, dir_fd):
            _unlink(path, dir_fd, name)
        _fsync_dir(path, dir_fd)


def _holds_auth_state(path: Path) -> bool:
    if not path.exists():
        return False
    with _folder_fd(path, create=False) as dir_fd:
        return bool(_auth_file_names(path, dir_fd))


# --- stores -----------------------------------------------------------------------------------


async def import_folder(
    path: Path, store: AuthStore, *, sealer: Sealer | None = None, session_id: str | None = None
) -> FolderState:
    """Load a Baileys folder into `store`: all keys in one `set` call, then the creds.

    Returns what was read (see FolderState.skipped for entries left out). Meant for an empty
    store; existing keys with other ids stay. Sealed files are opened as in `read_folder`.
    """
    state = await asyncio.to_thread(read_folder, path, sealer=sealer, session_id=session_id)
    if state.keys:
        await store.set(dict(state.keys))
    await store.save_creds(state.creds)
    return state


async def export_folder(
    store: AuthStore,
    path: Path,
    categories: Iterable[str] | None = None,
    *,
    replace: bool = False,
    sealer: Sealer | None = None,
) -> None:
    """Write a store out as a Baileys folder (all categories, or only `categories`).

    A folder that already
    holds auth files is refused (AuthFolderError) unless `replace`, which then also deletes the
    auth files that are not part of the export. With `sealer` the files are sealed (a backup
    or a mirror, see mirror.py); without, they hold the secrets in clear, as Baileys needs.
    """
    creds = await store.load_creds()
    if creds is None:
        raise AuthFolderError("the store holds no creds; nothing to export")
    keys = await store.all_keys()
    if categories is not None:
        wanted = set(categories)
        keys = {c: v for c, v in keys.items() if c in wanted}
    await asyncio.to_thread(_export, path, creds, keys, replace, sealer)


def _export(
    path: Path,
    creds: Creds,
    keys: dict[str, dict[str, Any]],
    replace: bool,
    sealer: Sealer | None,
) -> None:
    if not replace and _holds_auth_state(path):
        raise AuthFolderError(f"{path}: already holds a Baileys auth state (use replace)")
    write_folder(path, creds, keys, prune=replace, sealer=sealer)
