"""``python -m tests.trust [-k NAME]... [--debug] [--keep] [--list]``: run cases, print the table.

Exit 0 only when every count of every row is 0, no expectation failed and no case crashed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from tests.trust import cases  # noqa: F401 - registers the cases
from tests.trust.harness import REGISTRY, Lab, Row, run_case, table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.trust", description=__doc__)
    parser.add_argument("-k", action="append", default=[], help="run cases whose name contains K")
    parser.add_argument("--debug", action="store_true", help="print tracebacks of crashed cases")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--seed", type=int, default=8, help="seed of the random kill times")
    args = parser.parse_args(argv)
    chosen = [s for s in REGISTRY if not args.k or any(k in s.name for k in args.k)]
    if args.list:
        for spec in chosen:
            print(f"{spec.name:28} {spec.did}")
        return 0
    if not chosen:
        print(f"no case matches {args.k}", file=sys.stderr)
        return 64
    lab = Lab(seed=args.seed)
    rows: list[Row] = []
    started = time.monotonic()
    try:
        lab.start()
        print(f"trust: {len(chosen)} cases, registry {lab.registry.url}, work in {lab.root}")
        for number, spec in enumerate(chosen, 1):
            print(f"[{number}/{len(chosen)}] {spec.name}: {spec.did} …", flush=True)
            row = run_case(lab, spec, debug=args.debug)
            rows.append(row)
            counts = row.counts
            state = "ok" if row.ok else "FAIL"
            detail = f"ERROR {row.error}" if row.error else row.result
            print(
                f"    {state} in {row.seconds:.0f}s: lost {counts.lost}, wrong {counts.wrong}, "
                f"leaked {counts.leaked}, stuck {counts.stuck} — {detail}",
                flush=True,
            )
    finally:
        lab.close(keep=args.keep)
    print()
    print(table(rows))
    failed = [r for r in rows if not r.ok]
    print(
        f"\n{len(rows) - len(failed)}/{len(rows)} cases clean in {time.monotonic() - started:.0f}s"
        + (f"; work kept in {lab.root}" if args.keep else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
