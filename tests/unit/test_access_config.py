"""``access:`` and ``configOwners`` in ``streamlock.yaml``, and what ``validate`` says of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.access import codeowners
from reconciler.config import parse_config
from reconciler.errors import ValidationError
from reconciler.imagestream import validate_repo

STREAM = """\
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app
spec:
  tags:
  - name: v1
    from:
      kind: DockerImage
      name: {reference}
"""

MULTI = """\
defaultNamespace: tools
configOwners: ["@example/platform"]
git:
  author: streamlock-bot <bot@example.com>
access:
  shop:
    owners: ["@example/shop-team", "alice@example.com"]
    pullers: [staging]
  staging:
    owners: ["@carol"]
  tools:
    owners: ["@example/tools"]
  quiet: {}
"""


def _repo(root: Path, config: str, streams: dict[str, str]) -> Path:
    (root / "streamlock.yaml").write_text(config)
    for relative, text in streams.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_config_owners_are_read() -> None:
    """``configOwners`` lists the owners of streamlock.yaml."""
    config = parse_config(MULTI.encode())
    assert config.config_owners == ("@example/platform",)


def test_malformed_access_block_is_located() -> None:
    """An owner that is not @user, @org/team or an e-mail is refused at its line and column."""
    text = "access:\n  shop:\n    owners: [shop team]\n    readers: [x]\n"
    with pytest.raises(ValidationError) as caught:
        parse_config(text.encode())
    shown = [str(p) for p in caught.value.problems]
    assert shown[0].startswith("streamlock.yaml:3:14: access.shop.owners[0]:")
    assert any(s.startswith("streamlock.yaml:4:5: access.shop.readers") for s in shown)


def test_unknown_namespace_in_pullers_is_located(tmp_path: Path) -> None:
    """validate reports a ``pullers`` entry naming no namespace, at its line and column."""
    config = "access:\n  shop:\n    pullers: [staging, stagign]\n"
    streams = {
        "streams/shop/app.yaml": STREAM.format(reference="quay.io/shop/app:1"),
        "streams/staging/app.yaml": STREAM.format(reference="quay.io/shop/app:1"),
    }
    problems = [str(p) for p in validate_repo(_repo(tmp_path, config, streams))]
    assert problems == [
        "streamlock.yaml:3:24: access.shop.pullers[1]: unknown namespace 'stagign': "
        "no streams and no access entry name it"
    ]


def test_disallowed_registry_is_refused_at_validate_time(tmp_path: Path) -> None:
    """validate refuses a registry outside allowedRegistries, located at the pull spec."""
    config = 'allowedRegistries: ["quay.io"]\n'
    streams = {"streams/shop/app.yaml": STREAM.format(reference="docker.io/library/nginx:1")}
    problems = [str(p) for p in validate_repo(_repo(tmp_path, config, streams))]
    assert problems == [
        "streams/shop/app.yaml:10:13: spec.tags[0].from.name: registry docker.io is not in "
        "allowedRegistries of streamlock.yaml"
    ]


def test_codeowners_for_several_namespaces_github() -> None:
    """GitHub CODEOWNERS: config owners, the bot for locks/, each namespace's folder."""
    text = codeowners.render(parse_config(MULTI.encode()), codeowners.GITHUB)
    assert text == (
        f"{codeowners.HEADER}\n"
        "/streamlock.yaml @example/platform\n"
        "/.github/CODEOWNERS @example/platform\n"
        "/locks/ bot@example.com\n"
        "/streams/*.yaml @example/tools\n"
        "/streams/*.yml @example/tools\n"
        "/streams/*.json @example/tools\n"
        "/streams/shop/ @example/shop-team alice@example.com\n"
        "/streams/staging/ @carol\n"
        "/streams/tools/ @example/tools\n"
    )


def test_codeowners_gitlab_has_a_section() -> None:
    """GitLab CODEOWNERS: the same rules under a [streamlock] section."""
    text = codeowners.render(parse_config(MULTI.encode()), codeowners.GITLAB)
    lines = text.splitlines()
    assert lines[:3] == [codeowners.HEADER, "[streamlock]", "/streamlock.yaml @example/platform"]
    assert lines[3] == "/.gitlab/CODEOWNERS @example/platform"
    assert lines[4:] == codeowners.render(parse_config(MULTI.encode())).splitlines()[3:]


def test_codeowners_differences_are_located() -> None:
    """A hand-edited line is reported at its line number."""
    wanted = codeowners.render(parse_config(MULTI.encode()))
    edited = wanted.replace("/streams/staging/ @carol", "/streams/staging/ @mallory")
    problems = codeowners.differences(".github/CODEOWNERS", edited, wanted)
    assert [str(p) for p in problems] == [
        ".github/CODEOWNERS:9:1: '/streams/staging/ @mallory' should read "
        "'/streams/staging/ @carol' (run 'streamlock codeowners')"
    ]
