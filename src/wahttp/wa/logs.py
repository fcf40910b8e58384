"""Session-tagged logging: every line names its session as `[<session id>]`, as the seed did.

Callers pass ids, JIDs and codes only; keys, tokens and message bodies never go to a log.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any


class SessionLogger(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, logger: logging.Logger, session_id: str) -> None:
        super().__init__(logger, {"session": session_id})
        self._prefix = f"[{session_id}] " if session_id else ""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"{self._prefix}{msg}", kwargs
