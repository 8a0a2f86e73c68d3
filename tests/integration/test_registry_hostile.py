"""Hostile registry answers and references: each fails as its own tag's error, never the pass's."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from tests.fixtures.gitremote import ConfigRepo

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["plan", "-o", "json"]])
def test_userinfo_never_in_cli_output(
    config_repo: Callable[..., ConfigRepo], command: list[str]
) -> None:
    """A reference with user:password@ is reported by validate and plan without the password."""
    stream = (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        "metadata: {name: app, namespace: shop}\nspec:\n  tags:\n  - name: '1'\n"
        f"    from: {{kind: DockerImage, name: 'alice:{SECRET}@registry.example.com/shop/app:1'}}\n"
    )
    repo = config_repo({"streams/shop/app.yaml": stream})
    result = CliRunner().invoke(cli, [*command, "--repo", str(repo.work)])
    assert result.exit_code == 1
    assert "credentials" in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
