"""``python -m benchmarks [name ...]``: run each benchmark module in turn and print one table.

A benchmark is a module in this package with ``main() -> list[(measure, value, detail, verdict)]``;
adding one is adding a file. Names on the command line pick modules (default: all, sorted).
"""

from __future__ import annotations

import compileall
import importlib
import pkgutil
import sys
import textwrap
import time
import traceback
from pathlib import Path

HEADERS = ("MEASURE", "VALUE", "VERDICT")
DETAIL_WIDTH = 110


def discover() -> list[str]:
    """Benchmark module names in this package, sorted."""
    here = Path(__file__).parent
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(here)])
        if not info.name.startswith("_") and not info.ispkg
    )


def render(rows: list[tuple[str, ...]]) -> str:
    """MEASURE, VALUE and VERDICT in padded columns; each row's DETAIL wrapped beneath it,
    since a comparison's detail names both sides and their rounds."""
    table = [HEADERS, *((measure, value, verdict) for measure, value, _, verdict in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

    lines = [line(HEADERS)]
    for row, cells in zip(rows, table[1:], strict=True):
        lines.append(line(cells))
        detail = row[2]
        if detail.strip("- "):
            lines.extend(
                textwrap.wrap(detail, DETAIL_WIDTH, initial_indent="    ", subsequent_indent="    ")
            )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    available = discover()
    chosen = argv or available
    unknown = [name for name in chosen if name not in available]
    if unknown:
        print(
            f"✗ unknown benchmark {', '.join(unknown)}; have: {', '.join(available)}",
            file=sys.stderr,
        )
        return 64
    # An installed package comes with its bytecode; a checkout under PYTHONDONTWRITEBYTECODE
    # would recompile every module in each timed process (about 0.2 s of start-up).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "reconciler", quiet=1)
    rows: list[tuple[str, ...]] = []
    failed = False
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            rows.extend(tuple(str(cell) for cell in row) for row in module.main())
        except Exception:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            rows.append((name, "-", "the benchmark failed (traceback above)", "ERROR"))
            failed = True
        print(f"== {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(render(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
