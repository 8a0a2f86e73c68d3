"""Files other tools read: the pre-commit hook, the GitHub action, the Argo CD plugin."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]


def test_pre_commit_hook_runs_validate_on_stream_files(tmp_path: Path):
    """The hook's entry is the installed CLI's validate, and it fires for stream files only."""
    [hook] = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "streamlock-validate" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    assert files.search("streams/shop/app.yaml") and files.search("streamlock.yaml")
    assert files.search("locks/shop/app.lock.yaml")
    assert not files.search("deploy/shop/app.yaml")
    (tmp_path / "streams" / "shop").mkdir(parents=True)
    (tmp_path / "streams" / "shop" / "app.yaml").write_text("kind: ImageStream\n")
    program, *args = shlex.split(hook["entry"])
    script = Path(sys.executable).parent / program
    result = subprocess.run(
        [str(script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stdout.startswith("streams/shop/app.yaml:1:1: ")


def _steps(action: dict) -> dict[str, str]:
    return {step.get("id", step["name"]): step["run"] for step in action["runs"]["steps"]}


def test_github_action_reports_plan_changes_as_an_output(tmp_path: Path):
    """The action's plan step turns exit 2 into changed=true and writes the plan to the summary."""
    action = YAML(typ="safe").load((ROOT / "docs/integrations/action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    digest = "sha256:" + "a" * 64
    (tmp_path / "streams" / "shop").mkdir(parents=True)
    (tmp_path / "streams" / "shop" / "app.yaml").write_text(
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        "metadata: {name: app, namespace: shop}\nspec:\n  tags:\n"
        f"  - name: prod\n    reference: true\n"
        f"    from: {{kind: DockerImage, name: 'quay.io/shop/app@{digest}'}}\n"
    )
    output, summary = tmp_path / "output", tmp_path / "summary"
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "HOME": str(tmp_path),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    for step in ("Validate", "plan"):
        script = _steps(action)[step].replace("${{ inputs.repo }}", str(tmp_path))
        result = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    assert output.read_text() == "changed=true\n"
    assert "### streamlock plan" in summary.read_text() and "prod" in summary.read_text()


def test_argocd_plugin_generates_with_render():
    """The Argo CD plugin runs streamlock render in the application's path."""
    plugin = YAML(typ="safe").load((ROOT / "docs/integrations/argocd/plugin.yaml").read_text())
    assert plugin["kind"] == "ConfigManagementPlugin"
    assert plugin["spec"]["generate"]["command"] == ["streamlock", "render", "."]
