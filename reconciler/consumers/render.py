"""Lookup policy: short ``stream:tag`` container images resolved to pinned pull specs.

OpenShift resolves a pod's ``image: app:prod`` through the image stream ``app`` of the pod's own
namespace when that stream has ``lookupPolicy.local: true``; any other name is left alone. Here
the same happens to manifests on their way to the cluster (``streamlock render``), from the
lockfiles alone, without changing the sources. Two shapes: a file's text with the images spliced
in (comments and layout kept), and a KRM function's ``ResourceList``. Pure.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from reconciler.consumers.slots import Pin, tag_key
from reconciler.consumers.source import JsonPath, Scalar, Source, encode, objects, splice
from reconciler.consumers.triggers import POD_SPEC
from reconciler.errors import InputError

# A short name: no registry, no repository path, no digest; the tag defaults to latest.
_SHORT = re.compile(
    r"^(?P<stream>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::(?P<tag>\w[\w.-]{0,127}))?$"
)
_TEMPLATES: dict[str, JsonPath] = {**POD_SPEC, "DeploymentConfig": ("spec", "template", "spec")}
LookupStreams = frozenset[tuple[str, str]]  # (namespace, stream) with lookupPolicy.local: true


def resolve(
    image: str, namespace: str, local: LookupStreams, pins: Mapping[str, Pin]
) -> str | None:
    """The pinned pull spec a short image name stands for, or None when it is left alone."""
    match = _SHORT.match(image)
    if match is None or (namespace, match["stream"]) not in local:
        return None
    pin = pins.get(tag_key(namespace, match["stream"], match["tag"] or "latest"))
    return None if pin is None else pin.reference


def _namespace(obj: Mapping[str, Any], default: str) -> str:
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else default


def _images(obj: Mapping[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    """``(path, image)`` of every container and init container of an object's pod template."""
    spec: Any = obj
    prefix = _TEMPLATES.get(str(obj.get("kind")))
    if prefix is None:
        return
    for part in prefix:
        spec = spec.get(part) if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping):
        return
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        for index, item in enumerate(items if isinstance(items, list) else ()):
            image = item.get("image") if isinstance(item, Mapping) else None
            if isinstance(image, str):
                yield (*prefix, key, index, "image"), image


def render_source(
    source: Source, local: LookupStreams, pins: Mapping[str, Pin], default_namespace: str
) -> bytes:
    """The file with every short image of a local-lookup stream replaced by its pin."""
    edits: dict[Scalar, str] = {}
    for document, base, obj in objects(source):
        namespace = _namespace(obj, default_namespace)
        for where, image in _images(obj):
            pinned = resolve(image, namespace, local, pins)
            scalar = source.scalar(document, (*base, *where))
            if pinned is not None and scalar is not None:
                if scalar.style in ("|", ">"):
                    raise InputError(
                        f"{source.path}:{scalar.line}:{scalar.column}: a block scalar image "
                        "cannot be rendered; write it on one line"
                    )
                edits[scalar] = pinned
    return encode(source, splice(source.text, edits, as_json=source.is_json))


def render_resource_list(
    text: str, local: LookupStreams, pins: Mapping[str, Pin], default_namespace: str
) -> str:
    """A KRM function: a ``ResourceList`` in, the same list with its images resolved out."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise InputError(f"the function input is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping) or data.get("kind") != "ResourceList":
        raise InputError("the function input is not a ResourceList", hint="kustomize passes one")
    items = data.get("items") or []
    if not isinstance(items, list):
        raise InputError("ResourceList.items is not a list")
    for item in items:
        if not isinstance(item, Mapping):
            continue
        namespace = _namespace(item, default_namespace)
        for where, image in list(_images(item)):
            pinned = resolve(image, namespace, local, pins)
            if pinned is None:
                continue
            parent: Any = item
            for part in where[:-1]:
                parent = parent[part]
            flow = getattr(getattr(parent, "fa", None), "flow_style", lambda: False)()
            parent[where[-1]] = DoubleQuotedScalarString(pinned) if flow else pinned
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
