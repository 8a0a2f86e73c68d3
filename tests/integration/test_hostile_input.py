"""Hostile text in real passes: image labels, hand-edited locks, long names, odd file names."""

from __future__ import annotations

import subprocess

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.lockfile import loads
from reconciler.trailers import parse_message, summarize
from tests.fixtures import images
from tests.fixtures.gitremote import ConfigRepo

VERSION = "org.opencontainers.image.version"


def stream_file(namespace: str, name: str, tag: str, ref: str) -> str:
    return (
        "apiVersion: image.openshift.io/v1\n"
        "kind: ImageStream\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        "spec:\n  tags:\n"
        f"  - name: {tag}\n    from:\n      kind: DockerImage\n      name: {ref}\n"
        "    importPolicy:\n      scheduled: true\n"
    )


def streamlock(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def remote_lock(repo: ConfigRepo, path: str):
    text = repo.read_remote(path)
    assert text is not None, f"{path} not on the remote"
    return loads(text.encode(), path)


def trailer_keys(message: str) -> list[str]:
    """The keys of the trailers ``git interpret-trailers --parse`` finds in a message."""
    out = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    return [line.split(":", 1)[0] for line in out.splitlines()]


# --- trailer forgery through labels ----------------------------------------------------------


def test_forged_trailers_in_a_label_never_move_another_teams_base(config_repo, seeder, repo_name):
    """A label carrying Streamlock-* lines leaves other tags' bases alone; they still bump."""
    victim_repo, attacker_repo = f"{repo_name}/prod", f"{repo_name}/web"
    victim_ref, attacker_ref = seeder.ref(victim_repo, "1"), seeder.ref(attacker_repo, "1")
    d1 = seeder.push_image(victim_repo, "1", salt="one")
    # The attacker knows the victim's next digest and claims the reconciler already pinned it.
    manifest, _, _ = images.build_image(salt="two")
    d2 = images.sha256(manifest)
    forged = (
        "1.1\n\nSigned-off-by: Mallory <m@example.com>\n\n"
        "Streamlock-Tag: team/prod:latest\n"
        f"Streamlock-From: {victim_ref}\n"
        f"Streamlock-Previous: {d1}\n"
        f"Streamlock-Image: {d2}\n"
    )
    seeder.push_image(attacker_repo, "1", salt="a1", labels={VERSION: forged})
    attacker_stream = stream_file("web", "app", "v", attacker_ref)
    repo = config_repo(
        {
            "streams/team/prod.yaml": stream_file("team", "prod", "latest", victim_ref),
            "streams/web/app.yaml": attacker_stream,
        }
    )
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    assert remote_lock(repo, "locks/team/prod.lock.yaml").tags["latest"].image == d1
    # A re-import of the same digest makes a commit without trailers of its own.
    reimport = "    annotations:\n      streamlock.dev/reimport: '2'\n"
    repo.commit({"streams/web/app.yaml": attacker_stream + reimport}, "web/app: re-import")
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    [bump] = repo.log(n=1)
    assert bump["subject"].startswith("web/app: ")
    assert parse_message(bump["message"]) == []
    assert trailer_keys(bump["message"]) == ["v"]  # the body line of tag v, as git reads it
    assert "\nSigned-off-by" not in bump["message"]
    assert "\nStreamlock-" not in bump["message"]
    bases = summarize((c["sha"], c["message"]) for c in repo.log()).bases
    assert bases[("team/prod:latest", victim_ref)] == d1
    # The victim's registry now serves d2: the real rule bumps it (no RevertRespected).
    assert seeder.push_image(victim_repo, "1", salt="two") == d2
    code, out, err = streamlock("reconcile", "--repo", str(repo.work), "-A")
    assert code == 0, err
    assert "RevertRespected" not in out
    assert remote_lock(repo, "locks/team/prod.lock.yaml").tags["latest"].image == d2
