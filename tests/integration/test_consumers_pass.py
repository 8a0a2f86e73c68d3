"""Consumers in whole passes: the real registry, a bare Git remote, the CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from reconciler.cli import cli, registry_factory
from reconciler.config import load_config
from reconciler.consumers.reader import ScanCache, load
from reconciler.lockfile import loads
from reconciler.reconcile import PassOptions, run_pass
from reconciler.trailers import parse_message
from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder

LOCK = "locks/shop/app.lock.yaml"
DEPLOY = "deploy/shop/app.yaml"
VALUES = "deploy/shop/values.yaml"


def stream_file(ref: str) -> str:
    return (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        "metadata:\n  name: app\n  namespace: shop\n"
        "spec:\n  tags:\n"
        f"  - name: test\n    from:\n      kind: DockerImage\n      name: {ref}\n"
        "    importPolicy:\n      scheduled: true\n"
        "  - name: latest\n    from:\n      kind: ImageStreamTag\n      name: test\n"
    )


def deployment(image: str, tag: str = "latest") -> str:
    return (
        "# the shop's app\n"
        "apiVersion: apps/v1\nkind: Deployment\n"
        "metadata:\n  name: app\n  namespace: shop\n  annotations:\n"
        "    image.openshift.io/triggers: >-\n"
        f'      [{{"from":{{"kind":"ImageStreamTag","name":"app:{tag}"}},'
        '"fieldPath":"spec.template.spec.containers[?(@.name==\\"app\\")].image"}]\n'
        "spec:\n  template:\n    spec:\n      containers:\n"
        f"      - name: app\n        image: {image}   # keep this comment\n"
    )


def streamlock(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def image_of(repo: ConfigRepo, path: str = DEPLOY) -> str:
    text = repo.read_remote(path)
    assert text is not None
    line = next(line for line in text.splitlines() if "image: " in line)
    return line.split("image: ", 1)[1].split()[0]


@pytest.fixture
def shop(config_repo, seeder: Seeder, repo_name: str):
    """shop/app with test (scheduled) and latest → test, a Deployment following latest."""
    first = seeder.push_image(repo_name, "1.0", salt="one")
    ref = seeder.ref(repo_name, "1.0")
    repo = config_repo(
        {
            "streams/shop/app.yaml": stream_file(ref),
            DEPLOY: deployment(ref),
            VALUES: f'app:\n  image: {ref}  # {{"$imagestream": "shop/app:test"}}\n',
        }
    )
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    return repo, first


def test_first_pass_pins_consumers_in_the_lock_commit(shop, seeder, repo_name):
    """The commit that writes the lock also rewrites the trigger's image and the setter's value."""
    repo, first = shop
    pinned = seeder.ref(repo_name, digest=first)
    assert image_of(repo) == pinned and image_of(repo, VALUES) == pinned
    head = repo.log(n=1)[0]
    changed = repo.git("show", "--name-only", "--format=", head["sha"]).split()
    assert set(changed) == {LOCK, DEPLOY, VALUES}
    assert "# keep this comment" in (repo.read_remote(DEPLOY) or "")


def test_bump_rewrites_lock_and_consumers_in_one_commit(shop, seeder, repo_name):
    """A new image: one commit moves the lock and the consumers; only the image line changes."""
    repo, _ = shop
    before = repo.read_remote(DEPLOY) or ""
    second = seeder.push_image(repo_name, "1.0", salt="two")
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    head = repo.log(n=1)[0]
    assert {b.tag for b in parse_message(head["message"])} == {"shop/app:test", "shop/app:latest"}
    changed = repo.git("show", "--name-only", "--format=", head["sha"]).split()
    assert set(changed) == {LOCK, DEPLOY, VALUES}
    after = repo.read_remote(DEPLOY) or ""
    assert after == before.replace(image_of_text(before), seeder.ref(repo_name, digest=second))


def image_of_text(text: str) -> str:
    line = next(line for line in text.splitlines() if "image: " in line)
    return line.split("image: ", 1)[1].split()[0]


def test_revert_restores_lock_and_consumers_and_both_are_kept(shop, seeder, repo_name):
    """git revert of a bump restores the lock and the manifests; later passes keep both."""
    repo, first = shop
    seeder.push_image(repo_name, "1.0", salt="two")
    streamlock("reconcile", "--repo", str(repo.work))
    bump = repo.head()
    repo.git("revert", "--no-edit", bump)
    repo.git("push", "--quiet", "origin", "HEAD:main")
    reverted = repo.remote_head()
    for _ in range(2):
        code, out, err = streamlock("reconcile", "--repo", str(repo.work), "-A")
        assert code == 0, err
        assert "RevertRespected" in out
    assert repo.remote_head() == reverted
    pinned = seeder.ref(repo_name, digest=first)
    assert loads((repo.read_remote(LOCK) or "").encode()).tags["test"].image == first
    assert image_of(repo) == pinned and image_of(repo, VALUES) == pinned


def test_hand_edited_consumer_is_brought_back_in_its_own_commit(shop, seeder, repo_name):
    """A person's edit of a followed image is undone by a commit of its own; the lock stays."""
    repo, first = shop
    repo.commit({DEPLOY: deployment("quay.io/someone/else:1")}, "try another image")
    lock_before = repo.read_remote(LOCK)
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert "1 consumer file rewritten; 1 commit pushed" in err
    head = repo.log(n=1)[0]
    assert head["subject"] == "consumers: follow the locks"
    assert repo.git("show", "--name-only", "--format=", head["sha"]).split() == [DEPLOY]
    assert image_of(repo) == seeder.ref(repo_name, digest=first)
    assert repo.read_remote(LOCK) == lock_before
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    assert repo.log(n=1)[0]["sha"] == head["sha"]


def test_bad_consumer_is_located_while_the_lock_and_others_commit(shop, seeder, repo_name):
    """A trigger naming a missing tag is a located error; the lock and the other file move."""
    repo, _ = shop
    broken = deployment(seeder.ref(repo_name, "1.0"), tag="nightly")
    repo.commit({DEPLOY: broken}, "follow a tag that does not exist")
    second = seeder.push_image(repo_name, "1.0", salt="two")
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1
    assert f"{DEPLOY}:15:16:" in err and "shop/app:nightly is not a tag" in err
    assert loads((repo.read_remote(LOCK) or "").encode()).tags["test"].image == second
    assert image_of(repo, VALUES) == seeder.ref(repo_name, digest=second)
    assert repo.read_remote(DEPLOY) == broken


def test_no_op_pass_parses_no_consumer_file_again(shop, seeder, repo_name):
    """After a bump, every consumer's scan (rewritten ones too) is cached by blob id."""
    repo, _ = shop
    seeder.push_image(repo_name, "1.0", salt="two")
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    config = load_config(repo.work)
    cache = ScanCache(repo.work / ".git/streamlock/consumers.json", config.default_namespace)
    consumers, _ = load(repo.work, config, cache)
    assert {c.path for c in consumers} == {DEPLOY, VALUES}
    assert cache.parsed == 0


def test_consumer_with_uncommitted_changes_is_left_alone(shop, seeder, repo_name):
    """A consumer a person is editing is not overwritten; the lock still commits."""
    repo, _ = shop
    edited = (repo.work / DEPLOY).read_text() + "# work in progress\n"
    (repo.work / DEPLOY).write_text(edited)
    second = seeder.push_image(repo_name, "1.0", salt="two")
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1 and f"{DEPLOY}:1:1: uncommitted changes" in err
    assert (repo.work / DEPLOY).read_text() == edited
    assert loads((repo.read_remote(LOCK) or "").encode()).tags["test"].image == second
    assert image_of(repo, VALUES) == seeder.ref(repo_name, digest=second)


def test_review_branch_carries_the_consumers_and_does_not_churn(config_repo, seeder, repo_name):
    """push: branch proposes lock and consumers together; a re-run leaves the branch alone."""
    first = seeder.push_image(repo_name, "1.0", salt="review")
    ref = seeder.ref(repo_name, "1.0")
    repo = config_repo(
        {
            "streamlock.yaml": "git:\n  push: branch\n",
            "streams/shop/app.yaml": stream_file(ref),
            DEPLOY: deployment(ref),
        }
    )
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    branch = "streamlock/shop-app"
    proposed = repo.read_remote(DEPLOY, ref=branch) or ""
    assert f"image: {seeder.ref(repo_name, digest=first)}" in proposed
    tip = repo.git("ls-remote", "origin", f"refs/heads/{branch}").split()[0]
    later = datetime(2030, 1, 1, tzinfo=UTC)  # another import time: only the stamps differ
    result = asyncio.run(run_pass(repo.work, registry_factory, PassOptions(now=later)))
    assert result.ok, result.problems
    assert repo.git("ls-remote", "origin", f"refs/heads/{branch}").split()[0] == tip


def test_plan_lists_the_consumers_a_pass_would_rewrite(shop, seeder, repo_name):
    """plan -o json names the consumer files next to the tags, and exits 2."""
    repo, _ = shop
    seeder.push_image(repo_name, "1.0", salt="two")
    code, out, _ = streamlock("plan", "--repo", str(repo.work), "-o", "json")
    assert code == 2
    assert json.loads(out)["consumers"] == [DEPLOY, VALUES]
