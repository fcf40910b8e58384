"""The binary XML node exchanged with WhatsApp (Baileys' BinaryNode) and its accessors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from wahttp.wa.jid import Jid

# Bytes for binary payloads; str only for string-encoded content (tokens, packed numbers,
# JIDs), which is what Baileys' decoder returns for those wire forms.
Content: TypeAlias = "list[Node] | bytes | str | None"

_REPR_STR_MAX = 32  # longer strings in repr show only their length


@dataclass(slots=True)
class Node:
    """One element: a tag, string attributes (ordered) and optional content."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    content: Content = None

    def attr(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)

    def attr_jid(self, name: str) -> Jid | None:
        """The attribute parsed as a JID; None when missing or not a valid JID."""
        value = self.attrs.get(name)
        if value is None:
            return None
        try:
            return Jid.parse(value)
        except ValueError:
            return None

    def attr_int(self, name: str, default: int = 0) -> int:
        """The attribute as a decimal integer; `default` when missing or malformed."""
        value = self.attrs.get(name)
        if value is None or len(value) > 20:  # also keeps int() cheap on hostile input
            return default
        try:
            return int(value)
        except ValueError:
            return default

    def children(self, tag: str | None = None) -> list[Node]:
        """Child nodes (all, or those with `tag`); empty when content is not a list."""
        content = self.content
        if not isinstance(content, list):
            return []
        if tag is None:
            return list(content)
        return [child for child in content if child.tag == tag]

    def child(self, tag: str) -> Node | None:
        """The first child with `tag`, if any."""
        content = self.content
        if isinstance(content, list):
            for child in content:
                if child.tag == tag:
                    return child
        return None

    def content_bytes(self) -> bytes | None:
        """Binary content (string content UTF-8 encoded); None for lists and no content."""
        content = self.content
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        if isinstance(content, str):
            return content.encode("utf-8")
        return None

    def __repr__(self) -> str:
        attrs = "".join(f" {key}={value!r}" for key, value in self.attrs.items())
        content = self.content
        if content is None:
            return f"<{self.tag}{attrs}/>"
        if isinstance(content, list):
            inner = "".join(repr(child) for child in content)
        elif isinstance(content, str) and len(content) <= _REPR_STR_MAX:
            inner = repr(content)
        elif isinstance(content, str):
            inner = f"[str len={len(content)}]"
        else:  # never print binary payloads: they carry keys and ciphertext
            inner = f"[{len(content)} bytes]"
        return f"<{self.tag}{attrs}>{inner}</{self.tag}>"
