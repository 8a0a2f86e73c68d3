"""Hostile text in real passes: image labels, hand-edited locks, long names, odd file names."""

from __future__ import annotations

import json
import os
import subprocess

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.lockfile import dumps, loads
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


# --- control characters in labels ------------------------------------------------------------


def test_control_characters_in_labels_commit_and_push_every_stream(config_repo, seeder, repo_name):
    """NUL, CR and line separators in labels: every stream commits and pushes, labels kept."""
    odd = "1.0\x00\r\n\x0b\x0c\x1c\x85\u2028\u2029\x1b[31m\ufeff"
    refs = {}
    for index, name in enumerate(("a", "b", "c")):
        labels = {VERSION: odd, "org.opencontainers.image.revision": f"r{index}\x00"}
        seeder.push_image(f"{repo_name}/{name}", "1", salt=name, labels=labels)
        refs[name] = seeder.ref(f"{repo_name}/{name}", "1")
    repo = config_repo(
        {f"streams/shop/{n}.yaml": stream_file("shop", n, "v", ref) for n, ref in refs.items()}
    )
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert repo.remote_head() == repo.head()
    assert repo.git("status", "--porcelain") == ""
    for name in refs:
        path = f"locks/shop/{name}.lock.yaml"
        data = (repo.work / path).read_bytes()
        lock = loads(data, path)
        assert lock.tags["v"].labels[VERSION] == odd
        assert dumps(lock) == data
        assert repo.read_remote(path) == data.decode()
    messages = "".join(c["message"] for c in repo.log())
    assert "\x00" not in messages and "\r" not in messages and "\u2028" not in messages


# --- hand-edited locks -----------------------------------------------------------------------


def two_streams(config_repo, seeder, repo_name):
    """shop/app and shop/web, reconciled once; returns (repo, {name: (repo path, digest)})."""
    images_ = {}
    files = {}
    for name in ("app", "web"):
        path = f"{repo_name}/{name}"
        images_[name] = (path, seeder.push_image(path, "1", salt=f"{name}-1"))
        files[f"streams/shop/{name}.yaml"] = stream_file("shop", name, "v", seeder.ref(path, "1"))
    repo = config_repo(files)
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    return repo, images_


def test_lock_claiming_another_stream_is_set_aside_and_never_overwrites_it(
    config_repo, seeder, repo_name
):
    """A lock with another stream's metadata fails alone, located; both real locks stay."""
    repo, pushed = two_streams(config_repo, seeder, repo_name)
    app_lock = repo.read_remote("locks/shop/app.lock.yaml")
    forged = app_lock.replace(pushed["app"][1], pushed["web"][1])  # web's lock, saying shop/app
    repo.commit({"locks/shop/web.lock.yaml": forged}, "hand edit")
    new_app = seeder.push_image(pushed["app"][0], "1", salt="app-2")
    seeder.push_image(pushed["web"][0], "1", salt="web-2")
    code, out, err = streamlock("plan", "--repo", str(repo.work))
    assert code == 1
    assert (
        "locks/shop/web.lock.yaml:5:3: metadata: describes shop/app but the file is for shop/web"
        in err
    )
    code, out, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1
    assert "locks/shop/web.lock.yaml:5:3:" in err and "InvalidLock" in out
    assert remote_lock(repo, "locks/shop/app.lock.yaml").tags["v"].image == new_app
    assert repo.read_remote("locks/shop/web.lock.yaml") == forged
    assert repo.git("status", "--porcelain") == ""


def test_lock_with_a_non_digest_image_is_never_rewritten(config_repo, seeder, repo_name):
    """A lock whose image is not a digest is reported with path:line:col and left as it is."""
    repo, pushed = two_streams(config_repo, seeder, repo_name)
    web_lock = repo.read_remote("locks/shop/web.lock.yaml")
    edited = web_lock.replace(f"image: {pushed['web'][1]}", "image: latest", 1)
    assert edited != web_lock
    repo.commit({"locks/shop/web.lock.yaml": edited}, "hand edit")
    head = repo.remote_head()
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1
    assert (
        "locks/shop/web.lock.yaml:" in err and "tags.v.image: 'latest' is not a valid digest" in err
    )
    assert repo.remote_head() == head  # nothing else changed: no commit at all
    new_app = seeder.push_image(pushed["app"][0], "1", salt="app-2")
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 1
    assert remote_lock(repo, "locks/shop/app.lock.yaml").tags["v"].image == new_app
    assert repo.read_remote("locks/shop/web.lock.yaml") == edited


def test_broken_lock_of_a_removed_stream_is_not_pruned(config_repo, seeder, repo_name):
    """A broken lock whose stream is gone stays, is reported, and plan exits 1."""
    repo, _ = two_streams(config_repo, seeder, repo_name)
    broken = "apiVersion: streamlock/v1\nkind: ImageStreamLock\nmetadata: {name: gone}\ntags: {}\n"
    repo.commit({"locks/shop/gone.lock.yaml": broken}, "stray lock")
    code, _, err = streamlock("plan", "--repo", str(repo.work))
    assert code == 1 and "locks/shop/gone.lock.yaml:3:11: metadata: " in err
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1, err
    assert repo.read_remote("locks/shop/gone.lock.yaml") == broken


# --- long names ------------------------------------------------------------------------------


def long_name(length: int) -> str:
    return ("a" * 60 + ".") * (length // 61) + "b" * (length % 61)


def test_validate_refuses_stream_names_too_long_for_a_lock_file(tmp_path):
    """246–253 characters pass DNS-1123 but not NAME_MAX; validate says so, located."""
    for length in (246, 253):
        name = long_name(length)
        assert len(name) == length
        root = tmp_path / str(length)
        (root / "streams/shop").mkdir(parents=True)
        (root / "streams/shop/long.yaml").write_text(stream_file("shop", name, "v", "quay.io/a:1"))
        code, out, _ = streamlock("validate", "--repo", str(root))
        assert code == 1, out
        assert out.startswith("streams/shop/long.yaml:4:9: metadata.name: a stream name of ")
        assert f"{length} characters is too long" in out and "NAME_MAX" in out
        assert "at most 245 characters" in out


def test_pass_skips_a_stream_whose_name_is_too_long(config_repo, seeder, repo_name):
    """A 250-character stream is reported and skipped; the others commit; no traceback."""
    digest = seeder.push_image(repo_name, "1", salt="long")
    ref = seeder.ref(repo_name, "1")
    repo = config_repo(
        {
            "streams/shop/long.yaml": stream_file("shop", long_name(250), "v", ref),
            "streams/shop/app.yaml": stream_file("shop", "app", "v", ref),
        }
    )
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 1
    assert "streams/shop/long.yaml:4:9: metadata.name: a stream name of 250 characters" in err
    assert remote_lock(repo, "locks/shop/app.lock.yaml").tags["v"].image == digest
    assert repo.git("status", "--porcelain") == ""


def test_pass_locks_a_stream_with_the_longest_name(config_repo, seeder, repo_name):
    """A 245-character stream name, the longest allowed, is reconciled and pushed."""
    digest = seeder.push_image(repo_name, "1", salt="longest")
    name = long_name(245)
    repo = config_repo(
        {"streams/shop/long.yaml": stream_file("shop", name, "v", seeder.ref(repo_name, "1"))}
    )
    code, out, _ = streamlock("validate", "--repo", str(repo.work))
    assert code == 0, out
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    assert remote_lock(repo, f"locks/shop/{name}.lock.yaml").tags["v"].image == digest
    assert repo.git("status", "--porcelain") == ""


# --- CI output formats -----------------------------------------------------------------------

INJECTED = "x\n::set-output name=pwned::1\r\n::error file=a,b:c%.yaml"


def repo_with_bad_file(root, name: str):
    (root / "streams/shop").mkdir(parents=True)
    (root / "streams/shop" / name).write_text("kind: Nonsense\n")
    return root


def unescape_property(text: str) -> str:
    for escaped, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, raw)
    return text


def test_github_format_escapes_a_file_name_with_newlines(tmp_path):
    """A file name with newlines, ':' and ',' gives one escaped ::error line, no other command."""
    root = repo_with_bad_file(tmp_path, INJECTED)
    code, out, _ = streamlock("validate", "--repo", str(root), "--format", "github")
    assert code == 1
    [line] = out.splitlines()
    assert line.startswith("::error file=streams/shop/x%0A%3A%3Aset-output name=pwned%3A%3A1")
    path = line.removeprefix("::error file=").split(",line=", 1)[0]
    assert unescape_property(path) == f"streams/shop/{INJECTED}"
    assert line.split(",line=", 1)[1].startswith("1,col=7::kind: ")


def test_gitlab_format_keeps_a_file_name_with_newlines_inside_json(tmp_path):
    """The GitLab report is JSON whose location.path is the real name, escaped by JSON."""
    root = repo_with_bad_file(tmp_path, INJECTED)
    code, out, _ = streamlock("validate", "--repo", str(root), "--format", "gitlab")
    assert code == 1
    [issue] = json.loads(out)
    assert issue["location"]["path"] == f"streams/shop/{INJECTED}"
    assert all(line.startswith((" ", "[", "]")) for line in out.splitlines())


def test_validate_formats_survive_a_file_name_that_is_not_utf8(tmp_path):
    """A file name with bytes that are not UTF-8 is escaped in every format, never a crash."""
    (tmp_path / "streams/shop").mkdir(parents=True)
    (tmp_path / "streams/shop").joinpath(os.fsdecode(b"bad\xff\x1b.yaml")).write_text("kind: X\n")
    for fmt in ("text", "github", "gitlab"):
        code, out, _ = streamlock("validate", "--repo", str(tmp_path), "--format", fmt)
        assert code == 1, fmt
        assert "\x1b" not in out and "bad" in out
