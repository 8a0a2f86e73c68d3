"""Consumers offline: `render` (read back as YAML and by kubectl) and `validate`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from reconciler.cli import cli
from reconciler.imagestream import TagReference
from reconciler.lockfile import LockEntry, StreamLock, dumps
from tests.fixtures.tools import require

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
PINNED = f"quay.io/shop/web@{DIGEST}"


def stream(name: str, local: bool, namespace: str = "shop") -> str:
    return (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n  lookupPolicy:\n    local: {'true' if local else 'false'}\n  tags:\n"
        f"  - name: '2.4'\n    from:\n      kind: DockerImage\n"
        f"      name: quay.io/shop/{name}:2.4\n"
        f"  - name: latest\n    from:\n      kind: DockerImage\n"
        f"      name: quay.io/shop/{name}:2\n"
    )


def lock(name: str, digest: str, namespace: str = "shop") -> bytes:
    tags = {
        tag: LockEntry(
            TagReference("DockerImage", f"quay.io/shop/{name}:{ref}"),
            digest,
            f"quay.io/shop/{name}@{digest}",
            "0" * 64,
        )
        for tag, ref in (("2.4", "2.4"), ("latest", "2"))
    }
    return dumps(StreamLock(namespace, name, tags))


MANIFEST = """\
# the storefront
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: web          # latest, through local lookup
      containers:
      - name: web
        image: "web:2.4"
      - name: side
        image: api:2.4      # api has no local lookup: left alone
      - name: proxy
        image: docker.io/library/nginx:1.27
---
apiVersion: v1
kind: Pod
metadata:
  name: other
  namespace: staging
spec:
  containers:
  - name: web
    image: web:2.4          # another namespace: left alone
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository checkout without .git: config, two streams, their locks, a manifest."""
    files = {
        "streamlock.yaml": b"apiVersion: streamlock/v1\nkind: Config\ndefaultNamespace: shop\n",
        "streams/shop/web.yaml": stream("web", True).encode(),
        "streams/shop/api.yaml": stream("api", False).encode(),
        "locks/shop/web.lock.yaml": lock("web", DIGEST),
        "locks/shop/api.lock.yaml": lock("api", OTHER),
        "deploy/shop/web.yaml": MANIFEST.encode(),
    }
    for relative, data in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


def render(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["render", *args], input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def images(text: str) -> list[str]:
    found = []
    for doc in YAML(typ="safe").load_all(text):
        spec = doc["spec"].get("template", {}).get("spec", doc["spec"])
        for key in ("initContainers", "containers"):
            found += [c["image"] for c in spec.get(key, [])]
    return found


def test_short_names_of_local_lookup_streams_are_pinned(tree, monkeypatch):
    """From a sub-directory without .git: web and web:2.4 pinned, everything else as written."""
    monkeypatch.chdir(tree / "deploy" / "shop")
    code, out, err = render()
    assert code == 0, err
    assert images(out) == [PINNED, PINNED, "api:2.4", "docker.io/library/nginx:1.27", "web:2.4"]
    assert "# the storefront" in out and err == ""


def test_sources_are_not_touched(tree):
    """render prints; the manifest on disk keeps its short names."""
    assert render(str(tree / "deploy"), "--repo", str(tree))[0] == 0
    assert (tree / "deploy/shop/web.yaml").read_text() == MANIFEST


def test_error_prints_nothing_on_stdout(tree):
    """A broken manifest: exit 1, a located message on stderr, stdout empty."""
    (tree / "deploy/shop/bad.yaml").write_text("kind: Pod\nspec: [\n")
    code, out, err = render(str(tree / "deploy"), "--repo", str(tree))
    assert code == 1 and out == ""
    assert "deploy/shop/bad.yaml:3" in err


def test_krm_function_resolves_resource_list_items(tree):
    """As a KRM function: a ResourceList in, the same list with resolved images out."""
    resource_list = (
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"
        "- apiVersion: v1\n  kind: Pod\n  metadata: {name: p, namespace: shop}\n"
        "  spec:\n    containers:\n    - {name: web, image: web:2.4}\n"
    )
    code, out, err = render("--krm", "--repo", str(tree), stdin=resource_list)
    assert code == 0, err
    data = YAML(typ="safe").load(out)
    assert data["kind"] == "ResourceList"
    assert data["items"][0]["spec"]["containers"][0]["image"] == PINNED


def test_kubectl_reads_the_rendered_stream(tree):
    """kubectl accepts the output: apply --dry-run=client where it can run without a server,
    else its own offline decoder (label --local)."""
    require("kubectl", "kubernetes-client")
    code, out, _ = render(str(tree / "deploy"), "--repo", str(tree))
    assert code == 0
    apply = subprocess.run(
        ["kubectl", "apply", "--dry-run=client", "--validate=false", "-f", "-"],
        input=out,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if apply.returncode == 0:
        assert "deployment.apps/web created (dry run)" in apply.stdout
        return
    local = subprocess.run(
        ["kubectl", "label", "--local", "-f", "-", "rendered=yes", "-o", "json"],
        input=out,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert local.returncode == 0, local.stderr
    decoder, text, items = json.JSONDecoder(), local.stdout.strip(), []
    while text:  # kubectl prints one JSON object after another
        item, end = decoder.raw_decode(text)
        items.append(item)
        text = text[end:].strip()
    assert [i["kind"] for i in items] == ["Deployment", "Pod"]
    containers = items[0]["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == PINNED


def test_validate_locates_consumer_problems(tree):
    """validate reports a trigger naming an undeclared tag and an unmatched fieldPath, located."""
    (tree / "deploy/shop/bad.yaml").write_text(
        "kind: Deployment\nmetadata:\n  name: x\n  namespace: shop\n  annotations:\n"
        "    image.openshift.io/triggers: '["
        '{"from":{"kind":"ImageStreamTag","name":"web:nightly"},'
        '"fieldPath":"spec.template.spec.containers[0].image"},'
        '{"from":{"kind":"ImageStreamTag","name":"web:2.4"},'
        '"fieldPath":"spec.template.spec.containers[5].image"}'
        "]'\nspec:\n  template:\n    spec:\n      containers:\n      - {name: a, image: x}\n"
    )
    result = CliRunner().invoke(cli, ["validate", "--repo", str(tree)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'deploy/shop/bad.yaml:6:34: metadata.annotations["image.openshift.io/triggers"]: '
        "trigger 1: fieldPath 'spec.template.spec.containers[5].image' matches no container",
        "deploy/shop/bad.yaml:11:26: Deployment trigger shop/web:nightly: shop/web:nightly is "
        "not a tag of any image stream",
    ]


def test_render_of_the_repository_root_prints_manifests_only(tree):
    """From the root: deploy/ is rendered; stream files, locks and the config are not manifests."""
    code, out, err = render(str(tree), "--repo", str(tree))
    assert code == 0, err
    kinds = [doc["kind"] for doc in YAML(typ="safe").load_all(out)]
    assert kinds == ["Deployment", "Pod"]
