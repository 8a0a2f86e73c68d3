"""Commands a new user expects: init, get, hold/unhold, tag --dry-run, --version, adopt."""

from __future__ import annotations

import json

from click.testing import CliRunner

from reconciler import __version__
from reconciler.cli import cli
from tests.integration.test_reconcile import (
    docker_tag,
    follow_tag,
    lock_of,
    stream_file,
    streamlock,
)


def test_init_writes_a_repository_that_validates(tmp_path):
    """init: streamlock.yaml, a sample stream, .gitattributes, pre-commit; validate passes."""
    code, _, err = streamlock("init", str(tmp_path), "-n", "shop")
    assert code == 0, err
    for path in ("streamlock.yaml", "streams/shop/app.yaml", ".gitattributes",
                 ".pre-commit-config.yaml"):  # fmt: skip
        assert (tmp_path / path).is_file(), path
    assert "defaultNamespace: shop" in (tmp_path / "streamlock.yaml").read_text()
    code, _, err = streamlock("validate", "--repo", str(tmp_path))
    assert code == 0, err


def test_init_refuses_an_existing_repository(tmp_path):
    """init where streamlock.yaml exists changes nothing and says so."""
    (tmp_path / "streamlock.yaml").write_text("defaultNamespace: x\n")
    code, _, err = streamlock("init", str(tmp_path))
    assert code == 1 and "config repository already" in err
    assert (tmp_path / "streamlock.yaml").read_text() == "defaultNamespace: x\n"


def test_version_option_prints_the_version():
    """--version prints the package version."""
    code, out, _ = streamlock("--version")
    assert code == 0 and __version__ in out


def reconciled(config_repo, seeder, repo_name):
    seeder.push_image(repo_name, "1.0", salt="get")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + follow_tag("latest", "test")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    return repo


def test_get_is_lists_streams_and_get_istag_lists_tags(config_repo, seeder, repo_name):
    """get is / get istag print tables like oc; -o json the same rows as data."""
    repo = reconciled(config_repo, seeder, repo_name)
    code, out, err = streamlock("get", "is", "--repo", str(repo.work))
    assert code == 0, err
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "TAGS", "UPDATED"]
    assert out.splitlines()[1].split()[:3] == ["shop", "app", "test,latest"]
    code, out, _ = streamlock("get", "istag", "-n", "shop", "-o", "json", "--repo", str(repo.work))
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["app:latest", "app:test"]  # sorted as plan sorts
    assert rows[1]["image"] == seeder.ref(repo_name, digest=seeder.digest(repo_name, "1.0"))


def test_hold_writes_the_annotation_and_plan_keeps_the_tag(config_repo, seeder, repo_name):
    """hold --commit commits the annotation; the next build is not taken; unhold releases."""
    repo = reconciled(config_repo, seeder, repo_name)
    first = lock_of(repo).tags["test"].image
    code, _, err = streamlock(
        "hold", "shop/app:test", "--reason", "freeze", "--commit", "--repo", str(repo.work)
    )
    assert code == 0, err
    assert "streamlock.dev/hold: freeze" in (repo.work / "streams/shop/app.yaml").read_text()
    assert repo.git("status", "--porcelain") == ""
    repo.git("push", "-q", "origin", "HEAD")
    seeder.push_image(repo_name, "1.0", salt="get-2")
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    assert lock_of(repo).tags["test"].image == first
    code, _, err = streamlock("unhold", "shop/app:test", "--repo", str(repo.work))
    assert code == 0, err
    assert "streamlock.dev/hold" not in (repo.work / "streams/shop/app.yaml").read_text()


def test_tag_dry_run_prints_the_diff_and_writes_nothing(config_repo, seeder, repo_name):
    """tag --dry-run prints a unified diff on stdout and leaves the file as it was."""
    repo = reconciled(config_repo, seeder, repo_name)
    before = (repo.work / "streams/shop/app.yaml").read_text()
    code, out, err = streamlock(
        "tag", "--dry-run", "shop/app:test", "shop/app:prod", "--repo", str(repo.work)
    )
    assert code == 0, err
    assert out.startswith("--- a/streams/shop/app.yaml") and "+  - name: prod" in out
    assert (repo.work / "streams/shop/app.yaml").read_text() == before


OC_OUTPUT = """\
apiVersion: v1
kind: List
items:
- apiVersion: image.openshift.io/v1
  kind: ImageStream
  metadata:
    name: app
    namespace: shop
    uid: 0f6e7b36-1111-2222-3333-444455556666
    resourceVersion: "123456"
    generation: 4
    creationTimestamp: "2026-01-01T00:00:00Z"
    annotations:
      openshift.io/image.dockerRepositoryCheck: "2026-01-01T00:00:00Z"
  spec:
    lookupPolicy: {{local: false}}
    tags:
    - name: test
      from: {{kind: DockerImage, name: "{source}"}}
      generation: 4
      importPolicy: {{scheduled: false, importMode: Legacy}}
      referencePolicy: {{type: Source}}
    - name: prod
      from: {{kind: ImageStreamImage, name: "app@{old}"}}
      generation: 3
      importPolicy: {{}}
      referencePolicy: {{type: Source}}
  status:
    dockerImageRepository: ""
    tags:
    - tag: test
      items:
      - created: "2026-01-03T00:00:00Z"
        dockerImageReference: "{ref_new}"
        image: {new}
        generation: 4
      - created: "2026-01-02T00:00:00Z"
        dockerImageReference: "{ref_old}"
        image: {old}
        generation: 2
    - tag: prod
      items:
      - created: "2026-01-02T00:00:00Z"
        dockerImageReference: "{ref_old}"
        image: {old}
        generation: 3
"""


def test_adopt_pins_what_the_cluster_runs_with_no_bump_on_migration_day(
    config_repo, seeder, repo_name
):
    """oc get is -o yaml | adopt -: stream file without status, a lock seeded from status;
    the first pass keeps the cluster's images, the ImageStreamImage pin included."""
    old = seeder.push_image(repo_name, "1.0", salt="cluster-old")
    new = seeder.push_image(repo_name, "1.0", salt="cluster-new")
    seeder.push_image(repo_name, "1.0", salt="registry-newest")  # what a re-import would take
    source = seeder.ref(repo_name, "1.0")
    text = OC_OUTPUT.format(
        source=source,
        old=old,
        new=new,
        ref_old=seeder.ref(repo_name, digest=old),
        ref_new=seeder.ref(repo_name, digest=new),
    )
    repo = config_repo({"streamlock.yaml": "defaultNamespace: shop\n"})
    done = CliRunner().invoke(cli, ["adopt", "-", "--repo", str(repo.work)], input=text)
    assert done.exit_code == 0, done.stderr
    stream_text = (repo.work / "streams/shop/app.yaml").read_text()
    assert "status" not in stream_text and "uid" not in stream_text
    assert "generation" not in stream_text and "dockerRepositoryCheck" not in stream_text
    repo.git("add", "-A")
    repo.git("commit", "-qm", "adopt shop/app")
    repo.git("push", "-q", "origin", "HEAD")
    code, out, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err + out
    lock = lock_of(repo)
    assert lock.tags["test"].image == new
    assert [h.image for h in lock.tags["test"].history] == [new, old]
    assert lock.tags["prod"].image == old


def test_shell_completion_offers_stream_and_tag_names(config_repo):
    """Tab after 'describe shop/a' offers shop/app and its tags, read from the stream files."""
    tags = docker_tag("test", "quay.io/shop/app:1") + follow_tag("latest", "test")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    env = {
        "_STREAMLOCK_COMPLETE": "bash_complete",
        "COMP_WORDS": f"streamlock describe --repo {repo.work} shop/a",
        "COMP_CWORD": "4",
    }
    done = CliRunner().invoke(cli, [], env=env, prog_name="streamlock")
    offered = [line.split(",", 1)[1] for line in done.stdout.splitlines()]
    assert offered == ["shop/app", "shop/app:test", "shop/app:latest"]
