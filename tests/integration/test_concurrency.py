"""Two reconcilers and a person pushing to one bare remote at the same time (real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reconciler.lockfile import loads
from reconciler.trailers import parse_message

from .test_reconcile import docker_tag, stream_file

ROUNDS = 3
PROCESS_TIMEOUT = 120

HUMAN_SCRIPT = """
set -eu
cd "$1"
echo "$2" > "notes/$2.txt"
git add notes
git commit --quiet -m "notes: $2"
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  if git push --quiet origin HEAD:main 2>/dev/null; then exit 0; fi
  git pull --quiet --rebase origin main
done
exit 1
"""


def test_two_reconcilers_and_a_person_race(config_repo, seeder, repo_name, tmp_path: Path):
    """Final lock = registry state; every bump committed once; the person's commits kept."""
    tags = docker_tag("a", seeder.ref(repo_name, "a")) + docker_tag("b", seeder.ref(repo_name, "b"))
    files = {"streams/shop/app.yaml": stream_file("app", tags), "notes/README": "notes\n"}
    served: dict[str, list[str]] = {"a": [], "b": []}
    repo = config_repo(files)
    bots = [repo.clone(tmp_path / f"bot{i}") for i in range(2)]
    human = repo.clone(tmp_path / "human")
    script = Path(sys.executable).parent / "streamlock"
    for round_ in range(ROUNDS):
        for tag in served:
            served[tag].append(seeder.push_image(repo_name, tag, salt=f"{tag}-{round_}"))
        procs = [
            subprocess.Popen(
                [str(script), "reconcile", "--repo", str(bot)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for bot in bots
        ]
        procs.append(
            subprocess.Popen(
                ["bash", "-c", HUMAN_SCRIPT, "human", str(human), f"round{round_}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
        for proc in procs:
            _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
            assert proc.returncode == 0, err.decode()

    lock = loads(repo.read_remote("locks/shop/app.lock.yaml").encode())
    assert {t: e.image for t, e in lock.tags.items()} == {t: d[-1] for t, d in served.items()}
    bumps: dict[str, list[str]] = {"a": [], "b": []}
    for commit in reversed(repo.log()):
        for block in parse_message(commit["message"]):
            bumps[block.tag.rsplit(":", 1)[1]].append(block.image)
    assert bumps == served  # each round's image committed exactly once, in order
    subjects = [c["subject"] for c in repo.log()]
    assert all(f"notes: round{r}" in subjects for r in range(ROUNDS))
