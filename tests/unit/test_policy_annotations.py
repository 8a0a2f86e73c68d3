"""Every streamlock.dev annotation is checked offline and located at its value."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.config import Config
from reconciler.imagestream import parse_streams

HEAD = """\
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app
spec:
  tags:
  - name: test
    from:
      kind: DockerImage
      name: quay.io/shop/app:1
"""


def tag(
    annotations: dict[str, str], kind: str = "DockerImage", name: str = "quay.io/shop/app"
) -> str:
    lines = ["  - name: prod", "    annotations:"]
    lines += [f"      {k}: {v!r}" for k, v in annotations.items()]
    lines += ["    from:", f"      kind: {kind}", f"      name: {name}"]
    return HEAD + "\n".join(lines) + "\n"


def problems(text: str) -> list[str]:
    found = parse_streams({"streams/shop/app.yaml": text.encode()}, Config()).problems
    return [str(p) for p in found]


def test_a_good_policy_loads():
    """A policy with a filter, an exclusion and every gate is accepted."""
    text = tag(
        {
            "streamlock.dev/policy": "semver:>=1.2.0 <2",
            "streamlock.dev/tag-filter": "^v?(?P<v>.*)$",
            "streamlock.dev/tag-exclude": "-debug$",
            "streamlock.dev/min-age": "2h",
            "streamlock.dev/require-platforms": "linux/amd64,linux/arm64",
        }
    )
    assert problems(text) == []


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (
            {"streamlock.dev/policy": "semver:>>1"},
            'streams/shop/app.yaml:13:30: spec.tags[1].annotations["streamlock.dev/policy"]: '
            "invalid semver range",
        ),
        (
            {"streamlock.dev/policy": "numerical:asc", "streamlock.dev/tag-filter": "^(main"},
            'streams/shop/app.yaml:14:34: spec.tags[1].annotations["streamlock.dev/tag-filter"]: '
            "invalid tag-filter regular expression",
        ),
        (
            {"streamlock.dev/policy": "numerical:asc", "streamlock.dev/tag-exclude": "[a-"},
            'streams/shop/app.yaml:14:35: spec.tags[1].annotations["streamlock.dev/tag-exclude"]: '
            "invalid tag-exclude regular expression",
        ),
        (
            {"streamlock.dev/policy": "fancy"},
            'streams/shop/app.yaml:13:30: spec.tags[1].annotations["streamlock.dev/policy"]: '
            "unknown policy 'fancy'",
        ),
        (
            {"streamlock.dev/policy": "newest-build", "streamlock.dev/candidates": "many"},
            'streams/shop/app.yaml:14:34: spec.tags[1].annotations["streamlock.dev/candidates"]: '
            "'many' is not a whole number",
        ),
        (
            {"streamlock.dev/min-age": "two hours"},
            'streams/shop/app.yaml:13:31: spec.tags[1].annotations["streamlock.dev/min-age"]: '
            "'two hours' is not a duration",
        ),
        (
            {"streamlock.dev/require-platforms": "linux"},
            "streams/shop/app.yaml:13:41: spec.tags[1]"
            '.annotations["streamlock.dev/require-platforms"]: '
            "'linux' is not os/arch",
        ),
        (
            {"streamlock.dev/tag-filter": "^v"},
            'streams/shop/app.yaml:13:34: spec.tags[1].annotations["streamlock.dev/tag-filter"]: '
            "only used with streamlock.dev/policy",
        ),
        (
            {"streamlock.dev/polcy": "semver:>=1"},
            'streams/shop/app.yaml:13:29: spec.tags[1].annotations["streamlock.dev/polcy"]: '
            "unknown annotation",
        ),
    ],
)
def test_bad_annotations_are_located(annotations, expected):
    """Each bad annotation is one problem at path:line:col of its value."""
    found = problems(tag(annotations))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_a_policy_needs_a_repository():
    """A policy on a from.name with a tag is refused: a policy chooses the tag."""
    found = problems(tag({"streamlock.dev/policy": "semver:>=1"}, name="quay.io/shop/app:1"))
    assert len(found) == 1 and "without tag or digest" in found[0]


def test_promote_after_only_on_followers():
    """promote-after on an imported tag is refused; on a follower it loads."""
    assert (
        "only followers"
        in problems(tag({"streamlock.dev/promote-after": "24h"}, name="quay.io/shop/app:1"))[0]
    )
    follower = tag({"streamlock.dev/promote-after": "24h"}, kind="ImageStreamTag", name="test")
    assert problems(follower) == []


def test_validate_reports_a_bad_range_offline(tmp_path: Path):
    """``streamlock validate`` exits 1 and prints the located problem, without a registry."""
    path = tmp_path / "streams" / "shop" / "app.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(tag({"streamlock.dev/policy": "semver:>=1 <<2"}))
    result = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path)])
    assert result.exit_code == 1
    assert 'app.yaml:13:30: spec.tags[1].annotations["streamlock.dev/policy"]' in (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize(
    ("annotations", "kind", "name", "expected"),
    [
        ({"streamlock.dev/policy": "semver:>=1"}, "ImageStreamTag", "test", "needs from.kind"),
        ({"streamlock.dev/min-age": "1h"}, "ImageStreamTag", "test", "only imported tags"),
        ({"streamlock.dev/min-age": "0s"}, "DockerImage", "quay.io/a/b:1", "longer than 0s"),
        (
            {"streamlock.dev/require-platforms": "linux/amd64"},
            "ImageStreamTag",
            "test",
            "only imported tags are checked",
        ),
        (
            {"streamlock.dev/policy": "newest-build", "streamlock.dev/candidates": "500"},
            "DockerImage",
            "quay.io/a/b",
            "candidates must be between 1 and 100",
        ),
    ],
)
def test_annotations_where_they_do_not_apply(annotations, kind, name, expected):
    """Policies, ages and platforms on tags that cannot use them are located problems."""
    found = problems(tag(annotations, kind=kind, name=name))
    assert len(found) == 1 and expected in found[0], found
