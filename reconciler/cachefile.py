"""Files streamlock keeps beside Git's data in ``.git/streamlock/``: caches and local records.

They only save work (or tell a person what the last pass met), so writing one never fails a
pass: it is written whole or not at all, and a failure is logged at debug level.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

log = structlog.get_logger("streamlock")


def write_text(path: Path, text: str, what: str) -> bool:
    """Replace ``path`` with ``text`` through a temporary file and a rename; False if it could
    not be written (``what`` names the file in the log)."""
    return write_bytes(path, text.encode("utf-8"), what)


def write_bytes(path: Path, data: bytes, what: str) -> bool:
    """:func:`write_text` for bytes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        log.debug(f"{what} not written", error=str(exc))
        return False
    return True
