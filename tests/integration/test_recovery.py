"""Nothing stuck: a one-shot pass recovers by itself from whatever an interrupted run left.

Every interruption is real: a hook on the bare remote declines, moves the branch or sleeps; the
remote directory disappears; a stand-in ``git`` on PATH SIGKILLs the reconciler at one exact
step; a second run holds the checkout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.cli import registry_factory
from reconciler.errors import GitError, InputError, PushRejected
from reconciler.gitrepo import GitRepo
from reconciler.lockfile import loads
from reconciler.reconcile import PassOptions, run_pass
from reconciler.trailers import parse_message
from tests.fixtures.gitremote import ConfigRepo

from .test_reconcile import docker_tag, stream_file, streamlock

LOCK = "locks/shop/app.lock.yaml"
SCRIPT = Path(sys.executable).parent / "streamlock"
PROCESS_TIMEOUT = 120

# Another writer lands between our fetch and our push: the hook moves the branch itself (outside
# the push's quarantine), so the push loses the race exactly as it would against a real writer.
MOVE_BRANCH_HOOK = """#!/bin/sh
if [ -n "$MOVE_ALWAYS" ] || [ ! -e "$GIT_DIR/moved-once" ]; then
  touch "$GIT_DIR/moved-once"
  unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
  tip=$(git rev-parse refs/heads/main)
  n=$(ls "$GIT_DIR" | wc -l)
  blob=$(echo "note $n $(date +%s%N)" | git hash-object -w --stdin)
  git read-tree "$tip"
  git update-index --add --cacheinfo "100644,$blob,notes/by-a-person.txt"
  tree=$(git write-tree)
  c=$(GIT_AUTHOR_NAME=Person GIT_AUTHOR_EMAIL=p@example.com GIT_COMMITTER_NAME=Person \\
      GIT_COMMITTER_EMAIL=p@example.com git commit-tree "$tree" -p "$tip" -m "a person's note")
  git update-ref refs/heads/main "$c" "$tip"
fi
exit 0
"""

DECLINE_ONCE_HOOK = """#!/bin/sh
if [ ! -e "$GIT_DIR/declined-once" ]; then
  touch "$GIT_DIR/declined-once"
  echo "maintenance window: pushes are closed" >&2
  exit 1
fi
exit 0
"""

VANISH_HOOK = """#!/bin/sh
d=$(cd "$GIT_DIR" && pwd)
mv "$d" "$d.moved"
exit 1
"""

# A stand-in git that SIGKILLs its caller (the reconciler) when it is asked for one step.
KILLING_GIT = """#!/bin/sh
case " $* " in
  *"$KILL_AT"*)
    if [ ! -e "$KILL_MARKER" ]; then
      touch "$KILL_MARKER"
      kill -9 "$PPID"
      exit 1
    fi;;
esac
exec "$REAL_GIT" "$@"
"""


def install_hook(repo: ConfigRepo, name: str, text: str) -> Path:
    hook = repo.remote / "hooks" / name
    hook.write_text(text)
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    return hook


def bumps(repo: ConfigRepo, tag: str = "shop/app:test") -> list[tuple[str | None, str]]:
    """``(previous, image)`` of every bump record for ``tag`` on the remote, oldest first."""
    return [
        (block.previous, block.image)
        for commit in reversed(repo.log())
        for block in parse_message(commit["message"])
        if block.tag == tag
    ]


def remote_image(repo: ConfigRepo, tag: str = "test") -> str:
    text = repo.read_remote(LOCK)
    assert text is not None, "no lock on the remote"
    return loads(text.encode()).tags[tag].image


@pytest.fixture
def app(config_repo, seeder, repo_name):
    """shop/app:test follows a scheduled registry tag; the first image is pushed."""
    first = seeder.push_image(repo_name, "1", salt="first")
    repo = config_repo(
        {
            "streams/shop/app.yaml": stream_file(
                "app", docker_tag("test", seeder.ref(repo_name, "1"))
            ),
            "notes/README": "notes\n",
        }
    )
    return repo, first


def run_script(repo: ConfigRepo, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [str(SCRIPT), "reconcile", "--repo", str(repo.work), *args],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, **(env or {})},
        check=False,
    )


# --- 4: an interrupted push ------------------------------------------------------------------


def test_a_declined_push_is_recovered_by_the_next_run(app, seeder, repo_name):
    """After a hook declined the push, the next plain run drops its own commit and recomputes."""
    repo, _first = app
    install_hook(repo, "pre-receive", DECLINE_ONCE_HOOK)
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1 and "maintenance window" in err
    assert repo.git("rev-list", "--count", "origin/main..HEAD").strip() == "1"
    second = seeder.push_image(repo_name, "1", salt="second")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 0, err
    assert remote_image(repo) == second
    assert bumps(repo) == [(None, second)]  # the dropped commit's image was never recorded
    assert repo.head() == repo.remote_head()


def test_a_vanished_remote_is_recovered_once_it_is_back(app):
    """The remote gone mid-push leaves a local commit; the next run after it is back pushes."""
    repo, first = app
    moved = repo.remote.with_name("remote.git.moved")
    install_hook(repo, "pre-receive", VANISH_HOOK)
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1, err
    assert repo.git("rev-list", "--count", "origin/main..HEAD").strip() == "1"
    moved.rename(repo.remote)
    (repo.remote / "hooks" / "pre-receive").unlink()

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 0, err
    assert remote_image(repo) == first
    assert bumps(repo) == [(None, first)]


def test_a_persons_unpushed_commit_is_never_dropped(app):
    """A person's local commit makes the run refuse, naming the git commands; it stays."""
    repo, _ = app
    mine = repo.commit({"notes/mine.txt": "mine\n"}, "my own note", push=False)

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 1
    assert mine[:12] in err and "my own note" in err
    assert "git push origin HEAD:main" in err and "git reset --keep origin/main" in err
    assert repo.head() == mine
    assert repo.read_remote(LOCK) is None


def test_a_persons_commit_under_the_bots_own_commits_is_kept(app):
    """Own commits on top of a person's unpushed commit: refuse, and drop nothing."""
    repo, _ = app
    mine = repo.commit({"notes/mine.txt": "mine\n"}, "my own note", push=False)
    code, _, err = streamlock("reconcile", "--repo", str(repo.work), "--no-push")
    assert code == 0, err
    ours = repo.head()
    assert ours != mine

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 1 and mine[:12] in err and ours[:12] not in err
    assert repo.head() == ours


def test_a_commit_under_the_bots_name_that_edits_a_stream_is_a_persons(app):
    """Only lock files or the bot's own trailers mark a commit as the reconciler's."""
    repo, _ = app
    (repo.work / "notes" / "x.txt").write_text("x\n")
    repo.git("add", "notes")
    env_commit = [
        "-c",
        "user.name=streamlock",
        "-c",
        "user.email=streamlock@localhost",
        "commit",
        "--quiet",
        "-m",
        "looks like the bot",
    ]
    repo.git(*env_commit)

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 1 and "looks like the bot" in err


# --- the push race, forced -------------------------------------------------------------------


def test_a_lost_push_race_is_recomputed_on_the_new_tip(app):
    """Another writer lands between fetch and push: the pass recomputes and pushes on top."""
    repo, first = app
    install_hook(repo, "pre-receive", MOVE_BRANCH_HOOK)

    result = asyncio.run(run_pass(repo.work, registry_factory, PassOptions()))

    assert result.pushed and result.push_attempts == 2
    subjects = [c["subject"] for c in repo.log()]
    assert subjects[1] == "a person's note"  # kept, under our bump
    assert bumps(repo) == [(None, first)]


def test_a_push_race_lost_every_time_ends_in_push_rejected(app):
    """Bounded: after push_attempts lost races the pass raises PushRejected; next run recovers."""
    repo, first = app
    install_hook(repo, "pre-receive", MOVE_BRANCH_HOOK.replace('"$MOVE_ALWAYS"', '"always"'))

    with pytest.raises(PushRejected, match="rejected 3 times"):
        asyncio.run(run_pass(repo.work, registry_factory, PassOptions(push_attempts=3)))

    assert repo.commit_count() == 1 + 3  # three people's notes landed, none of ours
    (repo.remote / "hooks" / "pre-receive").unlink()
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert bumps(repo) == [(None, first)]


# --- 5: killed between the branch update and the index update ---------------------------------


@pytest.fixture
def killing_git(tmp_path: Path):
    """PATH and environment under which the reconciler is SIGKILLed at one git step, once."""
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout
    bin_dir = tmp_path / "killing-bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text(KILLING_GIT)
    fake.chmod(0o755)

    def env(step: str) -> dict[str, str]:
        return {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "REAL_GIT": real.strip(),
            "KILL_AT": step,
            "KILL_MARKER": str(tmp_path / f"killed-{step.replace(' ', '_')}"),
        }

    return env


@pytest.mark.parametrize(
    "step",
    [
        "fast-import",  # building the commits: nothing moved yet
        "update-index --add --remove",  # the branch moved, the index and worktree not yet
        "update-ref",  # the commit object exists, the branch has not moved
        "push --porcelain",  # committed, never pushed
        "reset --quiet --keep",  # moving to the remote's tip
    ],
)
def test_a_run_killed_at_any_step_is_finished_by_the_next(
    app, seeder, repo_name, killing_git, step
):
    """SIGKILL at a git step: the next plain run needs nobody and records each image once."""
    repo, first = app
    if step.startswith("reset"):
        repo.clone(repo.work.parent / "other")
        other = ConfigRepo(work=repo.work.parent / "other", remote=repo.remote)
        other.commit({"notes/other.txt": "x\n"}, "someone else's note")
    killed = run_script(repo, env=killing_git(step))
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))  # in process: it heals

    assert code == 0, err
    assert "uncommitted changes" not in err
    assert remote_image(repo) == first
    assert bumps(repo) == [(None, first)]
    assert repo.git("status", "--porcelain", "--untracked-files=all").strip() == ""
    assert repo.head() == repo.remote_head()


def test_a_hand_edit_after_a_torn_commit_is_not_overwritten(app, killing_git):
    """Healing restores only what the killed run was writing; a person's later edit stays."""
    repo, _ = app
    killed = run_script(repo, env=killing_git("update-index --add --remove"))
    assert killed.returncode == -signal.SIGKILL
    (repo.work / LOCK).write_text("# mine\n")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 1 and LOCK in err
    assert "git restore --staged --worktree" in err and "stash" not in err
    assert (repo.work / LOCK).read_text() == "# mine\n"


# --- 9: two runs on one checkout -------------------------------------------------------------


def test_a_second_run_on_a_held_checkout_fails_clearly(app):
    """While one run holds the checkout, another gives up after its wait with a clear message."""
    repo, _ = app
    held = GitRepo.open(repo.work).run_lock()
    with held, pytest.raises(GitError, match="another streamlock run") as caught:
        asyncio.run(run_pass(repo.work, registry_factory, PassOptions(lock_wait=0.3)))
    assert f"pid {os.getpid()}" in str(caught.value)
    assert repo.read_remote(LOCK) is None


def test_a_second_run_waits_for_the_first(app):
    """A run that finds the checkout held waits, then goes on from the tip the first left."""
    repo, first = app
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from reconciler.gitrepo import GitRepo\n"
            "with GitRepo.open(sys.argv[1]).run_lock():\n"
            "    print('held', flush=True)\n"
            "    time.sleep(1.0)\n",
            str(repo.work),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        code, _, err = streamlock("reconcile", "--repo", str(repo.work))
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
        holder.stdout.close()
    assert code == 0, err
    assert waited > 0.3  # it did wait for the holder rather than run alongside
    assert bumps(repo) == [(None, first)]


# --- 11: a git network timeout ---------------------------------------------------------------


def test_a_push_timeout_kills_the_remote_hook_too(app, tmp_path: Path):
    """Timed out, the whole git process group dies: the slow hook never lands the push later."""
    repo, _ = app
    marker = tmp_path / "hook-finished"
    install_hook(repo, "pre-receive", f"#!/bin/sh\nsleep 4\ntouch {marker}\nexit 0\n")
    before = repo.remote_head()

    failed = run_script(repo, env={"STREAMLOCK_GIT_TIMEOUT": "1"})

    assert failed.returncode == 1 and "did not finish within 1s" in failed.stderr
    time.sleep(5)  # longer than the hook would have needed
    assert not marker.exists()
    assert repo.remote_head() == before


def test_a_push_that_landed_despite_a_timeout_is_known_as_pushed(app):
    """The ref moved before a slow post-receive hook: the pass fetches and reports success."""
    repo, first = app
    install_hook(repo, "post-receive", "#!/bin/sh\nsleep 4\n")

    done = run_script(repo, env={"STREAMLOCK_GIT_TIMEOUT": "1"})

    assert done.returncode == 0, done.stderr
    (repo.remote / "hooks" / "post-receive").unlink()
    again = run_script(repo)
    assert again.returncode == 0, again.stderr
    assert bumps(repo) == [(None, first)]


def test_a_pass_whose_push_landed_despite_a_timeout_reports_it_pushed(app, monkeypatch):
    """In process: after a push error the pass fetches, finds its commit there, and succeeds."""
    repo, first = app
    install_hook(repo, "post-receive", "#!/bin/sh\nsleep 4\n")
    monkeypatch.setenv("STREAMLOCK_GIT_TIMEOUT", "1")

    result = asyncio.run(run_pass(repo.work, registry_factory, PassOptions()))

    assert result.pushed and repo.remote_head() == repo.head()
    assert bumps(repo) == [(None, first)]


# --- 14: where to push -----------------------------------------------------------------------


def test_no_remote_is_an_error_with_a_hint(app):
    """git.remote naming no remote fails instead of committing forever unpushed."""
    repo, _ = app
    repo.commit({"streamlock.yaml": "git:\n  remote: nowhere\n"}, "a remote that is not there")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 1
    assert "no remote 'nowhere'" in err and "git remote add nowhere" in err and "--no-push" in err
    assert repo.git("log", "--format=%s", "-1").strip() == "a remote that is not there"


def test_no_push_commits_without_a_remote(app):
    """--no-push commits locally and needs no remote."""
    repo, first = app
    repo.git("remote", "remove", "origin")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work), "--no-push")

    assert code == 0, err
    assert loads((repo.work / LOCK).read_bytes()).tags["test"].image == first


def test_a_branch_without_upstream_is_an_error_with_a_hint(app):
    """No upstream and no git.remote: reconcile fails with the command that sets one."""
    repo, _ = app
    repo.git("branch", "--unset-upstream")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 1 and "has no upstream" in err
    assert "git branch --set-upstream-to=origin/main" in err and "--no-push" in err
    assert repo.read_remote(LOCK) is None


def test_git_remote_needs_no_upstream(app):
    """With git.remote set, the checked-out branch is pushed there without tracking config."""
    repo, first = app
    repo.commit({"streamlock.yaml": "git:\n  remote: origin\n"}, "name the remote")
    repo.git("branch", "--unset-upstream")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 0, err
    assert remote_image(repo) == first


def test_git_remote_and_branch_from_the_config(app, tmp_path: Path):
    """git.remote names the remote pushed to; git.branch must be the branch checked out."""
    repo, _first = app
    other = tmp_path / "other.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(repo.remote), str(other)], check=True)
    repo.git("remote", "add", "mirror", str(other))
    repo.commit({"streamlock.yaml": "git:\n  remote: mirror\n  branch: main\n"}, "use mirror")
    repo.git("push", "--quiet", "mirror", "HEAD:main")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 0, err
    assert (
        "locks/shop/app.lock.yaml"
        in subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", "main"],
            cwd=other,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert repo.read_remote(LOCK) is None  # origin untouched


def test_another_branch_checked_out_than_git_branch(app):
    """git.branch names the watched branch; another one checked out is an error, not a push."""
    repo, _ = app
    repo.commit({"streamlock.yaml": "git:\n  branch: main\n"}, "watch main")
    repo.git("switch", "--quiet", "-c", "feature")

    with pytest.raises(InputError, match=r"git\.branch") as caught:
        asyncio.run(run_pass(repo.work, registry_factory, PassOptions()))
    assert "git switch main" in str(caught.value)


# --- a broken stream file keeps its lock -----------------------------------------------------


def test_a_broken_stream_file_never_loses_its_lock(config_repo, seeder, repo_name):
    """While a stream file is broken its lock stays, in a real pass that commits other streams."""
    ref = seeder.ref(repo_name, "1")
    first = seeder.push_image(repo_name, "1", salt="one")
    repo = config_repo(
        {
            "streams/shop/app.yaml": stream_file("app", docker_tag("test", ref)),
            "streams/shop/web.yaml": stream_file("web", docker_tag("test", ref)),
        }
    )
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    repo.pull()
    repo.commit({"streams/shop/web.yaml": "kind: ImageStream\nspec: [\n"}, "break web")
    second = seeder.push_image(repo_name, "1", salt="two")

    code, _, err = streamlock("reconcile", "--repo", str(repo.work))

    assert code == 1 and "streams/shop/web.yaml" in err
    assert remote_image(repo) == second  # the healthy stream was committed
    web = repo.read_remote("locks/shop/web.lock.yaml")
    assert web is not None and loads(web.encode()).tags["test"].image == first


# --- a full disk -----------------------------------------------------------------------------

# A stand-in git that fills the disk when asked for one step, once, then runs that step.
FILLING_GIT = """#!/bin/sh
case " $* " in
  *"$FILL_AT"*)
    if [ ! -e "$FILL_FILE" ]; then
      dd if=/dev/zero of="$FILL_FILE" bs=64k 2>/dev/null
    fi;;
esac
exec "$REAL_GIT" "$@"
"""


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs; CI runs as root and must be able to mount it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI") == "true" or os.geteuid() == 0:
            pytest.fail(f"cannot mount a tmpfs: {done.stderr.strip()}")
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("step", ["fast-import", "update-ref", "update-index --add --remove"])
def test_a_full_disk_mid_pass_is_recovered_once_there_is_room(app, small_disk, tmp_path, step):
    """The disk fills at a git step: a clear error, no traceback; with room again, all lands."""
    repo, first = app
    work = repo.clone(small_disk / "work")
    clone = ConfigRepo(work=work, remote=repo.remote)
    bin_dir = tmp_path / "filling-bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(FILLING_GIT)
    (bin_dir / "git").chmod(0o755)
    filler = small_disk / "filler"
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REAL_GIT": real.strip(),
        "FILL_AT": step,
        "FILL_FILE": str(filler),
    }

    full = run_script(clone, env=env)

    assert filler.exists() and full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr and full.stderr.startswith("✗ git ")
    filler.unlink()
    again = run_script(clone)
    assert again.returncode == 0, again.stderr
    assert remote_image(repo) == first
    assert bumps(repo) == [(None, first)]
    assert clone.git("status", "--porcelain", "--untracked-files=all").strip() == ""
