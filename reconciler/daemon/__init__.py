"""``streamlock run``: the reconciler as a daemon that owns its clone and shows its state.

Modules: ``workdir`` (the clone: made, cleaned, reset), ``state`` (pure: due times, shards,
per-tag status), ``hooks`` (pure: webhook payloads and their authentication), ``metrics``
(Prometheus), ``http`` (starlette routes), ``service`` (the loop: scheduler, passes, signals),
``logs`` (the libraries' logs through structlog's renderer).
"""

from __future__ import annotations

import asyncio

from reconciler.daemon.service import DaemonOptions, serve
from reconciler.daemon.state import Shard

__all__ = ["DaemonOptions", "Shard", "run"]


def run(options: DaemonOptions) -> None:
    """Serve until SIGTERM or SIGINT (the one ``asyncio.run`` of the daemon)."""
    asyncio.run(serve(options))
