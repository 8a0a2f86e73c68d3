"""Whole passes against the real registry and a bare Git remote, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.config import Config
from reconciler.gitrepo import LocalCommit
from reconciler.lockfile import loads
from reconciler.reconcile import is_own_commit
from reconciler.trailers import TrailerBlock, format_message, parse_message
from tests.fixtures.gitremote import ConfigRepo, git
from tests.fixtures.images import Seeder

LOCK = "locks/shop/app.lock.yaml"


def stream_file(name: str, tags: str, namespace: str = "shop") -> str:
    return (
        "apiVersion: image.openshift.io/v1\n"
        "kind: ImageStream\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n  tags:\n{tags}"
    )


def docker_tag(tag: str, ref: str, scheduled: bool = True, extra: str = "") -> str:
    text = f"  - name: {tag!r}\n    from:\n      kind: DockerImage\n      name: {ref}\n"
    if scheduled:
        text += "    importPolicy:\n      scheduled: true\n"
    return text + extra


def follow_tag(tag: str, target: str, namespace: str | None = None) -> str:
    text = f"  - name: {tag!r}\n    from:\n      kind: ImageStreamTag\n      name: {target!r}\n"
    if namespace:
        text += f"      namespace: {namespace}\n"
    return text


def streamlock(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def lock_of(repo: ConfigRepo, path: str = LOCK):
    text = repo.read_remote(path)
    assert text is not None, f"{path} not on the remote"
    return loads(text.encode())


@pytest.fixture
def app_repo(config_repo, seeder: Seeder, repo_name: str):
    """A config repo with shop/app: test (scheduled), latest → test, and the image pushed."""
    first = seeder.push_image(
        repo_name, "1.0", salt="one", labels={"org.opencontainers.image.version": "1.0"}
    )
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + follow_tag("latest", "test")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    return repo, first


def test_docker_tag_is_pinned_to_the_served_digest_and_pushed(app_repo, seeder, repo_name):
    """The lock on the remote pins what the registry serves; the alias follows it."""
    repo, first = app_repo
    code, out, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    lock = lock_of(repo)
    assert lock.tags["test"].image == first == seeder.digest(repo_name, "1.0")
    assert lock.tags["test"].docker_image_reference == seeder.ref(repo_name, digest=first)
    assert lock.tags["latest"].image == first
    assert lock.tags["test"].labels["org.opencontainers.image.version"] == "1.0"
    assert "added" in out and "✓" in err


def test_commit_carries_trailers(app_repo, seeder, repo_name):
    """The bump commit's trailers name tag, source, previous and new image."""
    repo, first = app_repo
    streamlock("reconcile", "--repo", str(repo.work))
    [commit] = repo.log(n=1)
    blocks = {b.tag: b for b in parse_message(commit["message"])}
    assert blocks["shop/app:test"].image == first
    assert blocks["shop/app:test"].source == seeder.ref(repo_name, "1.0")
    assert blocks["shop/app:test"].previous is None
    assert commit["subject"].startswith("shop/app: ")
    check = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=commit["message"], text=True,
        capture_output=True, check=True,
    )  # fmt: skip
    assert f"Streamlock-Image: {first}" in check.stdout


def test_second_pass_is_a_no_op(app_repo):
    """Nothing new: no commit, no byte changed, exit 0."""
    repo, _ = app_repo
    streamlock("reconcile", "--repo", str(repo.work))
    head, before = repo.remote_head(), repo.read_remote(LOCK)
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert repo.remote_head() == head and repo.read_remote(LOCK) == before
    assert repo.git("status", "--porcelain") == ""


def test_plan_exit_codes(app_repo, seeder, repo_name):
    """plan: 2 when it would change, 0 when nothing would; it never writes."""
    repo, _ = app_repo
    head = repo.head()
    code, out, _ = streamlock("plan", "--repo", str(repo.work))
    assert code == 2 and "shop" in out
    assert repo.head() == head and not (repo.work / LOCK).exists()
    streamlock("reconcile", "--repo", str(repo.work))
    code, _, _ = streamlock("plan", "--repo", str(repo.work))
    assert code == 0


def test_cross_stream_follower_and_cycle_isolated(config_repo, seeder, repo_name):
    """A follower in another stream tracks its target; a cycle fails only its own tags."""
    digest = seeder.push_image(repo_name, "base", salt="base")
    files = {
        "streams/shop/base.yaml": stream_file(
            "base", docker_tag("stable", seeder.ref(repo_name, "base"))
        ),
        "streams/shop/app.yaml": stream_file(
            "app",
            follow_tag("runtime", "base:stable") + follow_tag("a", "b") + follow_tag("b", "a"),
        ),
    }
    repo = config_repo(files)
    code, out, _ = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1  # the cycle is an error ...
    assert "FollowCycle" in out
    lock = lock_of(repo)  # ... but the rest committed
    assert lock.tags["runtime"].image == digest
    assert set(lock.tags) == {"runtime"}


def test_missing_image_fails_alone(config_repo, seeder, repo_name):
    """A tag whose image does not exist fails; the others still commit; exit 1."""
    digest = seeder.push_image(repo_name, "1.0", salt="x")
    tags = docker_tag("good", seeder.ref(repo_name, "1.0")) + docker_tag(
        "bad", seeder.ref(repo_name, "nope")
    )
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    code, out, _ = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1
    assert "ManifestUnknown" in out
    lock = lock_of(repo)
    assert set(lock.tags) == {"good"} and lock.tags["good"].image == digest


def test_revert_story(app_repo, seeder, repo_name):
    """Bump, git revert, passes keep the revert, a new image bumps again; hold is respected."""
    repo, first = app_repo
    streamlock("reconcile", "--repo", str(repo.work))
    second = seeder.push_image(repo_name, "1.0", salt="two")
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    assert lock_of(repo).tags["test"].image == second
    bump = repo.head()
    repo.git("revert", "--no-edit", bump)
    repo.git("push", "--quiet", "origin", "HEAD:main")
    for _ in range(2):
        code, out, _ = streamlock("reconcile", "--repo", str(repo.work), "-A")
        assert code == 0 and "RevertRespected" in out
        assert lock_of(repo).tags["test"].image == first
    third = seeder.push_image(repo_name, "1.0", salt="three")
    streamlock("reconcile", "--repo", str(repo.work))
    assert lock_of(repo).tags["test"].image == third
    assert lock_of(repo).tags["latest"].image == third
    held = docker_tag(
        "test",
        seeder.ref(repo_name, "1.0"),
        extra="    annotations:\n      streamlock.dev/hold: waiting for QA\n",
    )
    repo.commit(
        {"streams/shop/app.yaml": stream_file("app", held + follow_tag("latest", "test"))},
        "hold test",
    )
    seeder.push_image(repo_name, "1.0", salt="four")
    code, out, _ = streamlock("reconcile", "--repo", str(repo.work), "-A")
    assert code == 0 and "waiting for QA" in out
    assert lock_of(repo).tags["test"].image == third


def test_json_output(app_repo):
    """-o json prints machine-readable results on stdout only."""
    repo, first = app_repo
    code, out, _ = streamlock("reconcile", "--repo", str(repo.work), "-o", "json")
    data = json.loads(out)
    assert code == 0 and data["pushed"] is True
    assert {t["tag"]: t["image"] for t in data["tags"]}["test"] == first


def test_usage_error_exits_64():
    """A typo on the command line is exit 64, never mistaken for 'would change'."""
    code, _, err = streamlock("plan", "--no-such-flag")
    assert code == 64 and "no such option" in err.lower()


def test_installed_script_runs_as_a_process(app_repo):
    """The console script works as a subprocess, as CI and pre-commit run it."""
    repo, _ = app_repo
    script = Path(sys.executable).parent / "streamlock"
    proc = subprocess.run(
        [str(script), "plan", "--repo", str(repo.work)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "NAMESPACE" in proc.stdout


def auth_config(host: str) -> str:
    return (
        "apiVersion: streamlock/v1\nkind: Config\nregistries:\n"
        f"  - host: {host!r}\n    auth:\n      env:\n"
        "        username: SL_TEST_USER\n        password: SL_TEST_PASSWORD\n"
    )


@pytest.mark.parametrize("variant", ["registry_htpasswd", "registry_token"])
def test_authenticated_registry_and_no_secret_leaks(
    variant, request, make_seeder, config_repo, repo_name
):
    """Basic (htpasswd) and bearer-token registries resolve; the password is nowhere in output."""
    server = request.getfixturevalue(variant)
    seeder = make_seeder(server)
    digest = seeder.push_image(repo_name, "1.0", salt=variant)
    username, password = server.auth
    files = {
        "streamlock.yaml": auth_config(server.host),
        "streams/shop/app.yaml": stream_file(
            "app", docker_tag("test", seeder.ref(repo_name, "1.0"))
        ),
    }
    repo = config_repo(files)
    # The repository's auth: counts only when the operator trusts it (a protected branch).
    env = {
        "SL_TEST_USER": username,
        "SL_TEST_PASSWORD": password,
        "STREAMLOCK_TRUST_REPO_AUTH": "1",
    }
    result = CliRunner().invoke(
        cli, ["--log-level", "debug", "reconcile", "--repo", str(repo.work)], env=env
    )
    assert result.exit_code == 0, result.stderr
    assert lock_of(repo).tags["test"].image == digest
    everything = result.stdout + result.stderr + repo.git("log", "-p", "--all")
    assert password not in everything
    anonymous = CliRunner().invoke(
        cli, ["plan", "--repo", str(repo.work)], env={"SL_TEST_PASSWORD": ""}
    )
    assert password not in anonymous.stdout + anonymous.stderr


def test_review_branch_mode(config_repo, seeder, repo_name):
    """push: branch updates streamlock/<ns>-<stream>, never main; a re-run does not churn it."""
    seeder.push_image(repo_name, "1.0", salt="review")
    files = {
        "streamlock.yaml": "git:\n  push: branch\n",
        "streams/shop/app.yaml": stream_file(
            "app", docker_tag("test", seeder.ref(repo_name, "1.0"))
        ),
    }
    repo = config_repo(files)
    main_head = repo.remote_head()
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert repo.remote_head() == main_head
    assert "streamlock/shop-app" in repo.remote_branches()
    lock = loads(repo.read_remote(LOCK, ref="streamlock/shop-app").encode())
    first = repo.git("ls-remote", "origin", "refs/heads/streamlock/shop-app").split()[0]
    assert lock.tags["test"].image == seeder.digest(repo_name, "1.0")
    streamlock("reconcile", "--repo", str(repo.work))
    assert repo.git("ls-remote", "origin", "refs/heads/streamlock/shop-app").split()[0] == first
    newer = seeder.push_image(repo_name, "1.0", salt="review-2")
    streamlock("reconcile", "--repo", str(repo.work))
    lock = loads(repo.read_remote(LOCK, ref="streamlock/shop-app").encode())
    assert lock.tags["test"].image == newer


def test_promotion_story(app_repo, seeder, repo_name):
    """tag app:test app:prod pins prod; test bumps leave prod alone; --alias makes prod follow."""
    repo, _ = app_repo
    streamlock("reconcile", "--repo", str(repo.work))
    second = seeder.push_image(repo_name, "1.0", salt="promote-2")
    streamlock("reconcile", "--repo", str(repo.work))
    assert lock_of(repo).tags["test"].image == second
    code, _, err = streamlock(
        "tag", "--repo", str(repo.work), "--commit", "shop/app:test", "shop/app:prod"
    )
    assert code == 0, err
    repo.git("push", "--quiet", "origin", "HEAD:main")
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    assert lock_of(repo).tags["prod"].image == second
    assert lock_of(repo).tags["prod"].source.kind == "ImageStreamImage"
    third = seeder.push_image(repo_name, "1.0", salt="promote-3")
    streamlock("reconcile", "--repo", str(repo.work))
    tags = lock_of(repo).tags
    assert (tags["test"].image, tags["prod"].image) == (third, second)
    code, _, err = streamlock(
        "tag", "--repo", str(repo.work), "--commit", "--alias", "shop/app:test", "shop/app:prod"
    )
    assert code == 0, err
    repo.git("push", "--quiet", "origin", "HEAD:main")
    streamlock("reconcile", "--repo", str(repo.work))
    assert lock_of(repo).tags["prod"].image == third
    fourth = seeder.push_image(repo_name, "1.0", salt="promote-4")
    streamlock("reconcile", "--repo", str(repo.work))
    assert lock_of(repo).tags["prod"].image == fourth


def test_rollback_story(app_repo, seeder, repo_name):
    """rollback goes to the previous image and the next passes keep it until a new image."""
    repo, first = app_repo
    streamlock("reconcile", "--repo", str(repo.work))
    seeder.push_image(repo_name, "1.0", salt="rollback-2")
    streamlock("reconcile", "--repo", str(repo.work))
    code, out, err = streamlock("rollback", "--repo", str(repo.work), "--commit", "shop/app:test")
    assert code == 0, err
    repo.git("push", "--quiet", "origin", "HEAD:main")
    code, out, _ = streamlock("reconcile", "--repo", str(repo.work), "-A")
    assert code == 0 and "RevertRespected" in out
    assert lock_of(repo).tags["test"].image == first
    newest = seeder.push_image(repo_name, "1.0", salt="rollback-3")
    streamlock("reconcile", "--repo", str(repo.work))
    assert lock_of(repo).tags["test"].image == newest


def test_tls_registry_with_ca_file_relative_to_the_repo(
    registry_tls, make_seeder, config_repo, repo_name, tmp_path, monkeypatch
):
    """caFile in streamlock.yaml is read from the repository, whatever the working directory."""
    seeder = make_seeder(registry_tls)
    digest = seeder.push_image(repo_name, "1.0", salt="tls")
    files = {
        "certs/ca.pem": Path(registry_tls.ca_file).read_text(),
        "streamlock.yaml": (
            f"registries:\n  - host: {registry_tls.host!r}\n    caFile: certs/ca.pem\n"
        ),
        "streams/shop/app.yaml": stream_file(
            "app", docker_tag("test", seeder.ref(repo_name, "1.0"))
        ),
    }
    repo = config_repo(files)
    monkeypatch.chdir(tmp_path)
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert lock_of(repo).tags["test"].image == digest


def test_import_image_forces_an_unscheduled_tag(config_repo, seeder, repo_name):
    """A tag without scheduled: true is only re-imported when import-image asks for it."""
    first = seeder.push_image(repo_name, "1.0", salt="manual-1")
    tags = docker_tag("stable", seeder.ref(repo_name, "1.0"), scheduled=False)
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    streamlock("reconcile", "--repo", str(repo.work))
    second = seeder.push_image(repo_name, "1.0", salt="manual-2")
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    assert lock_of(repo).tags["stable"].image == first
    code, out, err = streamlock("import-image", "--repo", str(repo.work), "shop/app:stable")
    assert code == 0, err
    assert lock_of(repo).tags["stable"].image == second and "updated" in out


def test_import_image_of_an_unknown_stream_is_an_error(app_repo):
    """A typo in import-image's name fails instead of silently importing nothing."""
    repo, _ = app_repo
    code, _, err = streamlock("import-image", "--repo", str(repo.work), "shop/nope")
    assert code == 64 and "shop/nope: no such image stream" in err


def test_yaml_output(app_repo):
    """-o yaml prints the pass as data a script can read."""
    repo, _ = app_repo
    code, out, _ = streamlock("plan", "--repo", str(repo.work), "-o", "yaml")
    assert code == 2
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(out)
    assert {t["tag"] for t in data["tags"]} == {"test", "latest"} and data["changed"] is True


BOT_ID = ("streamlock", "streamlock@localhost")
BLOCK = TrailerBlock("shop/app:test", "registry.example.com/shop/app:1", None, "sha256:" + "a" * 64)


def local_commit(
    message: str, paths: tuple[str, ...], parents: tuple[str, ...] = ("p",)
) -> LocalCommit:
    return LocalCommit("c", BOT_ID, BOT_ID, parents, message, paths)


def test_a_lock_only_commit_without_trailers_is_the_reconcilers():
    """A refresh commit of the bot (locks only, no block) is its own, so recovery can redo it."""
    commit = local_commit("streamlock: refresh locks\n", ("locks/shop/app.lock.yaml",))
    assert is_own_commit(commit, Config())


def test_a_merge_under_the_bots_name_is_a_persons():
    """The reconciler never merges: a merge commit under its name belongs to a person."""
    message = format_message("shop/app: test", "", [BLOCK])
    assert is_own_commit(local_commit(message, ("locks/shop/app.lock.yaml",)), Config())
    merge = local_commit(message, ("locks/shop/app.lock.yaml",), ("p", "q"))
    assert not is_own_commit(merge, Config())


@pytest.mark.parametrize(
    ("grouping", "branches"),
    [
        ("stream", ["streamlock/shop-app", "streamlock/shop-web"]),
        ("pass", ["streamlock/all-streams"]),
    ],
)
def test_review_branches_sit_on_the_watched_branch(
    config_repo, seeder, repo_name, grouping, branches
):
    """Every stream gets its review branch (one for a whole pass), each on top of main's tip."""
    ref = seeder.ref(repo_name, "1.0")
    seeder.push_image(repo_name, "1.0", salt="review-many")
    repo = config_repo(
        {
            "streamlock.yaml": f"git:\n  push: branch\n  grouping: {grouping}\n",
            "streams/shop/app.yaml": stream_file("app", docker_tag("test", ref)),
            "streams/shop/web.yaml": stream_file("web", docker_tag("test", ref)),
        }
    )
    main_head = repo.remote_head()
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert sorted(b for b in repo.remote_branches() if b.startswith("streamlock/")) == branches
    for branch in branches:
        assert git(repo.remote, "rev-parse", f"{branch}~1").strip() == main_head


def test_review_branch_is_not_pushed_again_for_new_import_times(config_repo, seeder, repo_name):
    """A later run that only differs in import times leaves the review branch where it is."""
    seeder.push_image(repo_name, "1.0", salt="review-times")
    repo = config_repo(
        {
            "streamlock.yaml": "git:\n  push: branch\n",
            "streams/shop/app.yaml": stream_file(
                "app", docker_tag("test", seeder.ref(repo_name, "1.0"))
            ),
        }
    )
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    first = git(repo.remote, "rev-parse", "streamlock/shop-app").strip()
    time.sleep(1.1)  # the next pass stamps another second as the import time
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert git(repo.remote, "rev-parse", "streamlock/shop-app").strip() == first


def test_an_unchanged_review_branch_does_not_hold_back_the_next(config_repo, seeder, repo_name):
    """When shop/app's review branch already holds its pins, shop/web's is still updated."""
    seeder.push_image(repo_name, "1.0", salt="held-app")
    seeder.push_image(repo_name, "2.0", salt="held-web")
    repo = config_repo(
        {
            "streamlock.yaml": "git:\n  push: branch\n",
            "streams/shop/app.yaml": stream_file(
                "app", docker_tag("test", seeder.ref(repo_name, "1.0"))
            ),
            "streams/shop/web.yaml": stream_file(
                "web", docker_tag("test", seeder.ref(repo_name, "2.0"))
            ),
        }
    )
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    newer = seeder.push_image(repo_name, "2.0", salt="held-web-2")
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    web = loads(repo.read_remote("locks/shop/web.lock.yaml", ref="streamlock/shop-web").encode())
    assert web.tags["test"].image == newer
