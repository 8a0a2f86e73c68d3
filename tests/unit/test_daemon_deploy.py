"""The Containerfile and the Kubernetes manifests agree with the CLI and the HTTP routes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.cli import cli
from reconciler.daemon.http import build_app
from tests.fixtures.tools import require

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def documents() -> list[dict[str, Any]]:
    yaml = YAML(typ="safe")
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs.extend(d for d in yaml.load_all(path.read_text()) if d)
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in documents()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]  # fmt: skip
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def container() -> dict[str, Any]:
    [spec] = one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return spec


def arg(name: str) -> str:
    args = container()["args"]
    return args[args.index(name) + 1]


def routes() -> set[str]:
    class Stub:
        metrics = None

    return {route.path for route in build_app(Stub()).routes}  # type: ignore[arg-type]


def test_container_args_are_options_of_run():
    """Every flag the StatefulSet passes is an option of 'streamlock run'."""
    args = container()["args"]
    assert args[0] == "run"
    known = {opt for p in cli.commands["run"].params for opt in p.opts}
    flags = [a for a in args if a.startswith("--")]
    assert flags and set(flags) <= known


def test_listen_port_matches_container_port_and_scrape_annotation():
    """--listen's port is the container port, the Service's target and Prometheus' port."""
    port = int(arg("--listen").rsplit(":", 1)[1])
    [container_port] = container()["ports"]
    assert container_port["containerPort"] == port
    template = one("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert template["prometheus.io/port"] == str(port)
    assert template["prometheus.io/path"] in routes()
    service = one("Service", "streamlock")
    assert service["spec"]["ports"][0]["targetPort"] == container_port["name"]


def test_probes_use_daemon_routes():
    """Liveness and startup probe /healthz, readiness /readyz, all routes of the daemon."""
    spec = container()
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz", "/metrics", "/status"} <= routes()


def test_shard_count_is_the_replica_count():
    """--shard $(POD_INDEX)/N with N = replicas, POD_INDEX from the pod-index label."""
    index, count = arg("--shard").split("/")
    assert index == "$(POD_INDEX)"
    assert int(count) == one("StatefulSet")["spec"]["replicas"]
    env = {e["name"]: e for e in container()["env"]}
    path = env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert path == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_secrets_are_referenced_and_mounted_read_only():
    """The deploy key, registry config.json and hook secrets come from Secrets, read-only."""
    pod = one("StatefulSet")["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert set(secrets.values()) == {"streamlock-git", "streamlock-registry", "streamlock-hooks"}
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    assert all(mounts[name].get("readOnly") for name in secrets)
    hooks_dir = mounts["hooks"]["mountPath"]
    assert arg("--registry-token-file").startswith(hooks_dir + "/")
    assert arg("--git-secret-file").startswith(hooks_dir + "/")
    assert not any(d["kind"] == "Secret" for d in documents())


def test_pod_runs_non_root_on_a_read_only_root():
    """Non-root, read-only root file system; the workdir is on the volume claim."""
    pod = one("StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container()["securityContext"]["readOnlyRootFilesystem"] is True
    work = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}["work"]
    assert arg("--workdir").startswith(work + "/")


def test_containerfile_agrees():
    """The image runs as a numeric non-root user, exposes the listen port, and its defaults
    (workdir and listen address) sit on the volume and the exposed port."""
    text = (ROOT / "Containerfile").read_text()
    user = re.findall(r"^USER\s+(\S+)", text, re.M)[-1]
    assert user.isdigit() and int(user) != 0
    exposed = re.search(r"^EXPOSE\s+(\d+)", text, re.M).group(1)
    listen = re.search(r"STREAMLOCK_LISTEN=\S+:(\d+)", text).group(1)
    assert exposed == listen == arg("--listen").rsplit(":", 1)[1]
    volume = re.search(r'^VOLUME \["([^"]+)"\]', text, re.M).group(1)
    assert re.search(rf"STREAMLOCK_WORKDIR={re.escape(volume)}/", text)
    assert re.search(r'^ENTRYPOINT \["streamlock"\]', text, re.M)


def test_kubectl_reads_deploy(tmp_path):
    """kubectl's own decoder accepts every object in deploy/: apply --dry-run=client where it
    runs without a server, else the offline `label --local`, which needs none."""
    require("kubectl", "kubernetes-client")
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": "/nonexistent", "HOME": str(tmp_path)}
    result = subprocess.run(
        ["kubectl", "apply", "--dry-run=client", "--validate=false", "-f", str(DEPLOY)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    if result.returncode == 0:
        return
    result = subprocess.run(
        ["kubectl", "label", "--local", "-f", str(DEPLOY), "checked=yes", "-o", "name"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = sorted(result.stdout.split())
    assert any(n.startswith("statefulset.apps/") for n in names), names
    assert any(n.startswith("service/") for n in names), names
