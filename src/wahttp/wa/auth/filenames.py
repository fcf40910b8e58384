"""Baileys' auth-folder file names: `<category>-<id>.json`, with ids in their file-name form.

`useMultiFileAuthState` writes `fixFileName(f"{category}-{id}.json")`, where fixFileName turns
'/' into '__' and ':' into '-'. Stores keep ids in that same form so a key round-trips between
a folder, the original's `auth_json` and our per-key rows.
"""

from __future__ import annotations

CREDS_FILE = "creds.json"

# Baileys' SignalDataTypeMap (src/Types/Auth.ts), the categories a key store holds.
KNOWN_CATEGORIES: tuple[str, ...] = (
    "pre-key",
    "session",
    "sender-key",
    "sender-key-memory",
    "app-state-sync-key",
    "app-state-sync-version",
    "lid-mapping",
    "device-list",
    "tctoken",
    "identity-key",
    # wahttp's own: what app-state sync says of each chat (contact name, archive, pin, mute).
    # Baileys never reads these files; a folder moved to Baileys keeps working without them.
    "app-state-chat",
)

# Longest first, so "sender-key-memory-x" is not read as a "sender-key" named "memory-x".
_BY_LENGTH = tuple(sorted(KNOWN_CATEGORIES, key=len, reverse=True))


def file_key_id(key_id: str) -> str:
    """The id as Baileys' fixFileName writes it into a file name ('/' -> '__', ':' -> '-')."""
    return key_id.replace("/", "__").replace(":", "-")


def file_name(category: str, key_id: str) -> str:
    """The file that useMultiFileAuthState uses for this key."""
    return f"{category}-{file_key_id(key_id)}.json"


def split_file_name(name: str) -> tuple[str, str] | None:
    """(category, file-form id) of a key file, or None for creds.json and unknown files.

    The category is the longest known category the name starts with; the id is kept as it
    appears in the name (already in fixFileName form). Names Baileys never writes are none: an
    id not in fixFileName form (with ':'), or a name that is not UTF-8 on disk (lone surrogates
    from os.scandir), whose id no store can hold.
    """
    if name == CREDS_FILE or not name.endswith(".json") or not _is_utf8(name):
        return None
    stem = name[: -len(".json")]
    for category in _BY_LENGTH:
        prefix = category + "-"
        if stem.startswith(prefix) and len(stem) > len(prefix):
            key_id = stem[len(prefix) :]
            return (category, key_id) if file_key_id(key_id) == key_id else None
    return None


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
