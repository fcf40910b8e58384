"""Baileys' `useMultiFileAuthState` folder, read and written byte for byte as the original does.

A folder holds `creds.json` plus one `<category>-<id>.json` file per key (ids in fixFileName
form, as our stores keep them). Baileys reads a file with `JSON.parse(text, BufferJSON.reviver)`
and writes it with `JSON.stringify(value, BufferJSON.replacer)`; `js_json_loads` and
`js_json_dumps` are those two calls, so a value read here and written back gives the same bytes.

Reading never follows a symlink inside the folder and refuses oversized files; writing is atomic
per file (temporary file, fsync, rename) with mode 0600, in a folder created with mode 0700.

Given a Sealer (sealing.py), every file is written as a sealed envelope of exactly that text,
bound to the session (by default the folder's name), category and key id; Baileys cannot load
such a folder. Reading opens sealed files and takes clear ones as they are.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wahttp.wa.auth.bufferjson import b64encode
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
    "js_json_dumps",
    "js_json_loads",
    "key_file_name",
    "node_b64decode",
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


# --- JSON exactly as V8 parses and prints it, with Baileys' BufferJSON -----------------------


def js_json_loads(text: str) -> Any:
    """`JSON.parse(text, BufferJSON.reviver)`: JSON as Node reads it, Buffers revived as bytes.

    Revived as bytes, like Baileys: {"type":"Buffer","data":"<base64>"} (decoded as leniently as
    Buffer.from) and objects whose keys all parseInt and whose values are all numbers (a
    stringified Uint8Array; values taken modulo 256). Integers past 2**53 read as the double
    JavaScript gets (as int), past the double range as inf. Raises ValueError
    (json.JSONDecodeError) where JSON.parse throws, on NaN/Infinity literals too.
    """
    try:
        return json.loads(
            text,
            object_hook=_revive,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
        )
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def js_json_dumps(value: Any) -> str:
    """`JSON.stringify(value, BufferJSON.replacer)`, character for character.

    bytes (and dicts with "type": "Buffer") become {"type":"Buffer","data":"<base64>"}. Like V8:
    no whitespace; object keys that are array indices first in ascending order, then the rest in
    insertion order; numbers in JavaScript's shortest form (1.0 -> 1, 1e21 -> 1e+21), NaN and
    infinities as null, ints past 2**53 rounded to a double first; strings escape only '"', '\\'
    and control characters, and lone surrogates as \\udxxx (ES2019), everything else raw.
    """
    out: list[str] = []
    _dump(value, out, set())
    return "".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_int(text: str) -> int | float:
    # A JavaScript number is a double: past 2**53 an integer literal reads as the nearest
    # double (kept as int here), and past the double range as Infinity. This also spares
    # int() from parsing thousands of digits.
    if len(text) <= 15:
        return int(text)
    number = float(text)
    return int(number) if math.isfinite(number) else number


# parseInt(key, 10) is not NaN: optional JS white space, an optional sign, then a digit.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_PARSE_INT_OK = re.compile(f"[{_JS_SPACE}]*[+-]?[0-9]")
_ARRAY_INDEX = re.compile("0|[1-9][0-9]{0,9}")
_MAX_ARRAY_INDEX = 2**32 - 2


def _revive(obj: dict[str, Any]) -> Any:
    """BufferJSON.reviver for one object (json calls it bottom-up, as JSON.parse does)."""
    if obj.get("type") == "Buffer" and isinstance(obj.get("data"), str):
        return node_b64decode(obj["data"])
    if obj and all(_PARSE_INT_OK.match(k) for k in obj):
        values = [obj[k] for k in _js_key_order(obj)]
        if all(_is_number(v) for v in values):
            return bytes(_to_uint8(v) for v in values)
    return obj


_CANONICAL_B64 = re.compile("(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_NOT_B64 = re.compile("[^A-Za-z0-9+/]")
_URL_SAFE = str.maketrans("-_", "+/")


def node_b64decode(text: str) -> bytes:
    """`Buffer.from(text, 'base64')`, which never fails: both alphabets, other characters
    skipped, decoding stops at the first '=', a dangling sixth of a byte is dropped."""
    if _CANONICAL_B64.fullmatch(text):
        return base64.b64decode(text)
    digits = _NOT_B64.sub("", text.partition("=")[0].translate(_URL_SAFE))
    if len(digits) % 4 == 1:
        digits = digits[:-1]
    return base64.b64decode(digits + "=" * (-len(digits) % 4))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_uint8(value: float) -> int:
    """What storing a number into a Uint8Array keeps (ECMAScript ToUint8)."""
    if isinstance(value, int):
        return value & 0xFF
    if math.isnan(value) or math.isinf(value):
        return 0
    return math.trunc(value) & 0xFF


def _is_array_index(key: str) -> bool:
    return _ARRAY_INDEX.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX


def _js_key_order(keys: Iterable[str]) -> list[str]:
    """The order V8 enumerates an object's keys: array indices ascending, then the rest."""
    indices: list[str] = []
    names: list[str] = []
    for key in keys:
        (indices if _is_array_index(key) else names).append(key)
    indices.sort(key=int)
    return indices + names


def _dump(value: Any, out: list[str], active: set[int]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_js_quote(value))
    elif isinstance(value, int):
        out.append(_js_int(value))
    elif isinstance(value, float):
        out.append(_js_number(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        out.append(_buffer_json(bytes(value)))
    elif isinstance(value, Mapping):
        if value.get("type") == "Buffer":
            out.append(_buffer_json(_buffer_dict_bytes(value)))
            return
        _enter(value, active)
        out.append("{")
        first = True
        for key in _js_key_order(_str_keys(value)):
            if not first:
                out.append(",")
            first = False
            out.append(_js_quote(key))
            out.append(":")
            _dump(value[key], out, active)
        out.append("}")
        active.discard(id(value))
    elif isinstance(value, list | tuple):
        _enter(value, active)
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _dump(item, out, active)
        out.append("]")
        active.discard(id(value))
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _enter(container: object, active: set[int]) -> None:
    if id(container) in active:
        raise ValueError("circular reference: JSON.stringify cannot write it")
    active.add(id(container))


def _str_keys(mapping: Mapping[Any, Any]) -> Iterator[str]:
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be strings, not {type(key).__name__}")
        yield key


def _buffer_json(data: bytes) -> str:
    return '{"type":"Buffer","data":"' + b64encode(data) + '"}'


def _buffer_dict_bytes(value: Mapping[str, Any]) -> bytes:
    """The bytes BufferJSON.replacer writes for an object whose "type" is "Buffer"."""
    data = value.get("data")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        # Already BufferJSON-wrapped (bufferjson.to_json output): keep the bytes it stands for.
        # Node would take the string as UTF-8 here (and throw on ""), but it never holds such
        # an object: its reviver turns every one into a Buffer first.
        return node_b64decode(data)
    if isinstance(data, list | tuple) and all(_is_number(v) for v in data):
        return bytes(_to_uint8(v) for v in data)
    raise ValueError("an object with type 'Buffer' needs its bytes in 'data'")


_QUOTE_RE = re.compile('[\x00-\x1f"\\\\]|[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]')
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _quote_one(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) == 2:  # a surrogate pair held as two code points: one character in UTF-16
        return chr(0x10000 + ((ord(text[0]) - 0xD800) << 10) + (ord(text[1]) - 0xDC00))
    return _SHORT_ESCAPES.get(text) or f"\\u{ord(text):04x}"


def _js_quote(text: str) -> str:
    return '"' + _QUOTE_RE.sub(_quote_one, text) + '"'


def _js_int(value: int) -> str:
    if -(2**53) <= value <= 2**53:
        return str(int(value))
    try:
        return _js_number(float(value))
    except OverflowError:  # beyond any double: Infinity in JavaScript
        return "null"


def _js_number(value: float) -> str:
    """ECMAScript Number::toString for a double (repr gives the same shortest digits)."""
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value == 0:
        return "0"  # -0 too
    if value < 0:
        return "-" + _js_number(-value)
    mantissa, _, exp = repr(float(value)).partition("e")
    head, _, tail = mantissa.partition(".")
    digits = head + tail
    point = len(head) + (int(exp) if exp else 0)  # value = 0.digits * 10**point
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    s = significant.rstrip("0")
    k = len(s)
    if k <= point <= 21:
        return s + "0" * (point - k)
    if 0 < point <= 21:
        return s[:point] + "." + s[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + s
    e = point - 1
    return (s if k == 1 else s[0] + "." + s[1:]) + ("e+" if e >= 0 else "e-") + str(abs(e))


# --- reading a folder -------------------------------------------------------------------------


def _writable(value: Any) -> bool:
    """Whether BufferJSON.replacer can write `value` back: an object typed "Buffer" that the
    reviver left as it was (no base64 string in "data") needs its bytes as a list of numbers."""
    if isinstance(value, dict):
        if value.get("type") == "Buffer":
            try:
                _buffer_dict_bytes(value)
            except ValueError:
                return False
        return all(_writable(v) for v in value.values())
    if isinstance(value, list):
        return all(_writable(v) for v in value)
    return True


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
            if not _writable(value):
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
