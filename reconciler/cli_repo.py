"""Commands that start a config repository: ``init`` (a skeleton) and ``adopt`` (from a cluster).

``adopt`` turns what ``oc get is -o yaml`` prints into stream files and seeds each stream's first
lock from its ``status``, so the first pass pins what the cluster runs now and bumps only from
there. Both only write files; reviewing and committing them is the person's step.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from reconciler import lockfile, streamedit
from reconciler.config import CONFIG_FILE, load_config
from reconciler.console import notify, resolve_repo
from reconciler.errors import InputError
from reconciler.imagestream import (
    LIST_KINDS,
    ImageStream,
    TagSpec,
    load_streams,
    name_patterns,
    parse_streams,
)
from reconciler.lockfile import HistoryItem, LockEntry, StreamLock
from reconciler.schema import MAX_FILE_BYTES

# --- init ----------------------------------------------------------------------------------------

_CONFIG = """\
# streamlock configuration (docs/config.md). Every field has a default; these are the usual ones.
# Stream files live in streams/<namespace>/<name>.yaml; the reconciler writes
# locks/<namespace>/<name>.lock.yaml (never create locks/ by hand).
apiVersion: streamlock/v1
kind: Config

# Streams whose metadata names no namespace and whose folder says none fall here.
defaultNamespace: {namespace}

# Legacy import mode pins the single-platform manifest for this platform.
platform: linux/amd64

# How often `streamlock run` re-imports tags with importPolicy.scheduled: true (OpenShift: 15m).
importInterval: 15m

# Earlier images kept per tag in its lock (what `streamlock rollback` can go back to).
historyLimit: 10

# Only these registries may be imported from (shell patterns); delete the line to allow all.
# allowedRegistries: ["quay.io", "registry.redhat.io"]

# registries:
#   - host: quay.io
#     auth: {{configFile: ~/.docker/config.json}}   # secrets are referenced, never written here

git:
  push: direct        # `branch`: streamlock/<ns>-<stream> branches for review instead
  grouping: stream    # one commit per changed stream; `tag` or `pass` also work

# Manifests and Containerfiles kept in step with the locks (docs/consumers.md).
consumers: ["deploy/**/*.yaml", "deploy/**/*.yml"]
"""

_SAMPLE = """\
# An OpenShift ImageStream, as `oc get is -o yaml` prints it (status is not needed).
# Replace the image with yours; `streamlock plan` shows what the first reconcile pins.
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: {name}
  namespace: {namespace}
spec:
  lookupPolicy:
    local: false
  tags:
  - name: latest
    from:
      kind: DockerImage
      name: {image}
    importPolicy:
      scheduled: true       # re-imported every importInterval
"""

_ATTRIBUTES = """\
# Locks are written by streamlock: reviews fold them, merges keep one side whole.
locks/**/*.lock.yaml linguist-generated=true text eol=lf
"""

_PRE_COMMIT = """\
# pre-commit (https://pre-commit.com): `streamlock validate` before every commit, offline.
repos:
  - repo: local
    hooks:
      - id: streamlock-validate
        name: streamlock validate
        entry: streamlock validate
        language: system
        pass_filenames: false
        files: ^(streamlock\\.yaml|streams/.*\\.(ya?ml|json)|locks/.*\\.lock\\.yaml)$
"""


@click.command("init")
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path), default="."
)
@click.option(
    "-n", "--namespace", default="default", show_default=True, help="defaultNamespace to write."
)
@click.option(
    "--image",
    default="quay.io/example/app:latest",
    show_default=True,
    help="Registry image of the sample stream.",
)
def init(directory: Path, namespace: str, image: str) -> None:
    """Start a config repository: a commented streamlock.yaml, streams/ with a sample stream,
    .gitattributes for the locks and a pre-commit config. Existing files are never replaced."""
    if not name_patterns()[1].search(namespace):
        raise click.UsageError(f"-n {namespace!r} is not a valid namespace name")
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0] or "app"
    if not name_patterns()[0].search(name):
        name = "app"
    files = {
        CONFIG_FILE: _CONFIG.format(namespace=namespace),
        f"streams/{namespace}/{name}.yaml": _SAMPLE.format(
            namespace=namespace, name=name, image=image
        ),
        ".gitattributes": _ATTRIBUTES,
        ".pre-commit-config.yaml": _PRE_COMMIT,
    }
    existing = [path for path in files if (directory / path).exists()]
    if (directory / CONFIG_FILE).exists():
        raise InputError(
            f"{directory / CONFIG_FILE} exists: this is a config repository already",
            hint="'streamlock validate' checks it",
        )
    for path, text in files.items():
        if path in existing:
            notify(f"! {path} exists: left as it is")
            continue
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        notify(f"✓ wrote {path}")
    where = "" if directory == Path(".") else f" (in {directory})"
    notify(f"  next{where}: git init (if needed), edit the sample stream, 'streamlock plan'")


# --- adopt ---------------------------------------------------------------------------------------

# Metadata the API server sets; a stream file in Git carries none of it.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "generateName",
    "clusterName",
)
SERVER_ANNOTATIONS = (
    "openshift.io/image.dockerRepositoryCheck",
    "kubectl.kubernetes.io/last-applied-configuration",
)


def _read_input(paths: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for path in paths:
        if path == "-":
            yield "<stdin>", sys.stdin.read(MAX_FILE_BYTES * 16 + 1)
            continue
        try:
            yield path, Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text") from exc


def _objects(name: str, text: str) -> Iterator[CommentedMap]:
    """The ImageStream objects of YAML or JSON text: single objects, Lists, several documents."""
    yaml = YAML(typ="rt")
    try:
        documents = list(yaml.load_all(text))
    except YAMLError as exc:
        raise InputError(f"{name}: not valid YAML or JSON: {exc}".splitlines()[0]) from exc
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") in LIST_KINDS:
            for item in doc.get("items") or ():
                if isinstance(item, Mapping) and item.get("kind") == "ImageStream":
                    yield item
        elif doc.get("kind") == "ImageStream":
            yield doc


def _clean(obj: CommentedMap) -> CommentedMap:
    """The object as a person keeps it in Git: no status, no server-set metadata."""
    out = CommentedMap()
    for key, value in obj.items():
        if key == "status":
            continue
        out[key] = value
    meta = CommentedMap(
        (key, value) for key, value in (obj.get("metadata") or {}).items()
        if key not in SERVER_METADATA
    )  # fmt: skip
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if key not in SERVER_ANNOTATIONS
    }
    if annotations:
        meta["annotations"] = CommentedMap(annotations)
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    for item in (out.get("spec") or {}).get("tags") or ():
        if isinstance(item, dict):
            item.pop("generation", None)
    return out


def _dump(obj: CommentedMap) -> str:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(obj, out)
    return out.getvalue()


def _digest(value: Any) -> str | None:
    text = str(value or "")
    return text if text.startswith("sha256:") and len(text) == 71 else None


def seed_lock(stream: ImageStream, status: Any, path: str) -> StreamLock:
    """The first lock of an adopted stream: each tag's current image and history from the
    object's ``status.tags[].items`` (newest first, as OpenShift keeps them)."""
    events: dict[str, list[Any]] = {}
    for named in (status or {}).get("tags") or () if isinstance(status, Mapping) else ():
        if isinstance(named, Mapping) and isinstance(named.get("tag"), str):
            events[named["tag"]] = list(named.get("items") or ())
    tags: dict[str, LockEntry] = {}
    for spec in stream.tags:
        entry = _seed_entry(stream, spec, events.get(spec.name, []))
        if entry is not None:
            tags[spec.name] = entry
    return StreamLock(stream.namespace, stream.name, tags, source_path=path)


def _seed_entry(stream: ImageStream, spec: TagSpec, items: list[Any]) -> LockEntry | None:
    history = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        digest = _digest(item.get("image"))
        reference = str(item.get("dockerImageReference") or "")
        if digest is None or not reference:
            continue
        created = item.get("created")
        history.append(HistoryItem(digest, reference, None, str(created) if created else None))
    if not history:
        return None  # no image in status: resolved as usual by the first pass
    current = history[0]
    return LockEntry(
        source=spec.source,
        image=current.image,
        docker_image_reference=current.docker_image_reference,
        spec_hash=spec.spec_hash(stream.namespace),
        imported_at=current.imported_at,
        history=tuple(history),
    )


@click.command("adopt")
@click.argument("files", nargs=-1, required=True, metavar="FILE...|-")
@click.option(
    "-n",
    "--namespace",
    metavar="NAMESPACE",
    help="Namespace of objects that name none (default: defaultNamespace).",
)
@click.option("--force", is_flag=True, help="Replace stream files and locks that exist.")
@click.option(
    "--repo",
    "repo",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="STREAMLOCK_REPO",
    help="Config repository (default: walk up from the current directory).",
)
def adopt(files: tuple[str, ...], namespace: str | None, force: bool, repo: Path | None) -> None:
    """Take over ImageStreams from a cluster: 'oc get is -A -o yaml | streamlock adopt -'.

    Writes streams/<ns>/<name>.yaml per ImageStream (without status and server-set metadata)
    and seeds locks/<ns>/<name>.lock.yaml from its status: each tag's current image and its
    history. The first pass then pins what the cluster runs and bumps only from there; tags
    whose status has no image are resolved as usual.
    """
    root = resolve_repo(repo)
    config = load_config(root)
    default = namespace or config.default_namespace
    known = {s.key: s.path for s in load_streams(root, config).streams}
    written: dict[str, bytes] = {}
    said: list[str] = []
    for name, text in _read_input(files):
        for obj in _objects(name, text):
            meta = obj.get("metadata") or {}
            ns = meta.get("namespace") or default
            clean = _clean(obj)
            clean["metadata"]["namespace"] = ns
            path = streamedit.stream_file_path(ns, str(meta.get("name")))
            data = _dump(clean).encode()
            loaded = parse_streams({path: data}, config)
            if loaded.problems or len(loaded.streams) != 1:
                problems = "; ".join(str(p) for p in loaded.problems) or "no stream"
                raise InputError(f"{name}: {meta.get('name')!r} cannot be adopted: {problems}")
            [stream] = loaded.streams
            elsewhere = known.get(stream.key)
            if elsewhere is not None and elsewhere != path:
                raise InputError(
                    f"{ns}/{stream.name} is defined in {elsewhere} already",
                    hint="remove it there first, or leave this stream out",
                )
            lock = seed_lock(stream, obj.get("status"), path)
            lock_data = lockfile.dumps(lock)
            for target, content in ((path, data), (lock.path, lock_data)):
                if (
                    (root / target).exists()
                    and not force
                    and (root / target).read_bytes() != content
                ):
                    raise InputError(f"{target} exists", hint="run with --force to replace it")
                written[target] = content
            pinned = len(lock.tags)
            said.append(
                f"✓ {ns}/{stream.name} → {path}, {lock.path} "
                f"({pinned} of {len(stream.tags)} tags pinned from status)"
            )
    if not said:
        raise InputError("no ImageStream objects in the input", hint="oc get is -A -o yaml")
    for target, content in written.items():
        destination = root / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    for line in said:
        notify(line)
    notify("  review and commit them; the first 'streamlock reconcile' keeps these pins")


COMMANDS: list[click.Command] = [init, adopt]
