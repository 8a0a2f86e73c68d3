"""OpenShift image triggers on objects kept in Git: which container images follow which tags.

Three shapes, as OpenShift reads them:

- the ``image.openshift.io/triggers`` annotation (a JSON list of ``{from: {kind: ImageStreamTag,
  name, namespace?}, fieldPath, paused?}``) on Deployment, StatefulSet, DaemonSet, ReplicaSet,
  Job, CronJob and Pod. ``fieldPath`` is OpenShift's grammar, not JSONPath:
  ``<podspec>.containers[N].image``, ``<podspec>.containers[?(@.name=="web")].image`` and the
  ``initContainers`` forms, ``<podspec>`` being the kind's pod template path;
- a DeploymentConfig's ``spec.triggers[]`` of type ``ImageChange`` (``automatic: true`` only;
  every container and init container in ``containerNames``);
- a BuildConfig's ``ImageChange`` trigger naming a tag: its strategy's ``from`` is rewritten when
  that is a ``DockerImage`` pull spec.

Each trigger becomes a ``Slot``; what cannot be followed is a located ``Problem``. Pure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.consumers.slots import IMAGE, Slot, split_tag, tag_key
from reconciler.consumers.source import JsonPath, Source, objects
from reconciler.errors import Problem

ANNOTATION = "image.openshift.io/triggers"
IMAGE_STREAM_TAG = "ImageStreamTag"
DOCKER_IMAGE = "DockerImage"

POD_SPEC: dict[str, JsonPath] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
STRATEGIES = ("sourceStrategy", "dockerStrategy", "customStrategy")

_FIELD_PATH = re.compile(
    r"^(?P<prefix>[A-Za-z.]+)\.(?P<list>containers|initContainers)\["
    r"(?:(?P<index>\d+)|\?\(@\.name\s*==?\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)')\s*\))"
    r"\]\.image$"
)


def _namespace(obj: dict[str, Any], default: str) -> str:
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else default


def _get(data: Any, where: JsonPath) -> Any:
    for part in where:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return None
        elif not isinstance(data, dict):
            return None
        data = data[part] if isinstance(part, int) else data.get(part)
    return data


class _Finder:
    """Collects the slots and problems of one file."""

    def __init__(self, source: Source, default_namespace: str) -> None:
        self.source = source
        self.default_namespace = default_namespace
        self.slots: list[Slot] = []
        self.problems: list[Problem] = []

    def problem(self, document: int, where: JsonPath, message: str) -> None:
        self.problems.append(self.source.problem(document, where, message))

    def value(self, document: int, where: JsonPath, tag: str, origin: str, asked: JsonPath) -> None:
        """A slot for the string value at ``where``; a problem when it cannot be rewritten."""
        scalar = self.source.scalar(document, where)
        value = _get(self.source.documents[document].data, where)
        if scalar is None or not isinstance(value, str):
            self.problem(
                document, asked, f"{origin}: {'.'.join(map(str, where))} is not a string to rewrite"
            )
            return
        if scalar.style in ("|", ">"):
            self.problem(
                document,
                where,
                f"{origin}: a block scalar cannot be rewritten; write it on one line",
            )
            return
        if scalar.shared:
            self.problem(
                document,
                where,
                f"{origin}: the value is shared through a YAML alias or merge; write it out",
            )
            return
        self.slots.append(
            Slot(tag, IMAGE, value, origin, scalar.line, scalar.column, document, where)
        )

    def container(
        self,
        document: int,
        spec: JsonPath,
        lists: tuple[str, ...],
        name: str | None,
        index: int | None,
    ) -> JsonPath | None:
        """The path of a container (by name, or by index in the single list given)."""
        data = self.source.documents[document].data
        for key in lists:
            items = _get(data, (*spec, key))
            if not isinstance(items, list):
                continue
            if index is not None:
                return (*spec, key, index) if index < len(items) else None
            for position, item in enumerate(items):
                if isinstance(item, dict) and item.get("name") == name:
                    return (*spec, key, position)
        return None

    # -- the annotation ---------------------------------------------------------------------

    def annotation(self, document: int, base: JsonPath, obj: dict[str, Any]) -> None:
        annotations = _get(obj, ("metadata", "annotations"))
        if not isinstance(annotations, dict) or ANNOTATION not in annotations:
            return
        where = (*base, "metadata", "annotations", ANNOTATION)
        kind = obj.get("kind")
        if kind not in POD_SPEC:
            self.problem(document, where, f"{ANNOTATION} is not supported on kind {kind!r}")
            return
        try:
            triggers = json.loads(annotations[ANNOTATION])
        except (TypeError, ValueError) as exc:
            self.problem(document, where, f"{ANNOTATION} is not a JSON list: {exc}")
            return
        if not isinstance(triggers, list):
            self.problem(document, where, f"{ANNOTATION} is not a JSON list")
            return
        namespace = _namespace(obj, self.default_namespace)
        prefix = ".".join(POD_SPEC[kind])
        for number, trigger in enumerate(triggers):
            origin = f"trigger {number}"
            if not isinstance(trigger, dict):
                self.problem(document, where, f"{origin} is not an object")
                continue
            if trigger.get("paused") is True or trigger.get("paused") == "true":
                continue
            tag = self.tag_of(trigger.get("from"), namespace, document, where, origin)
            if tag is None:
                continue
            field_path = trigger.get("fieldPath")
            match = _FIELD_PATH.match(field_path) if isinstance(field_path, str) else None
            if match is None or match["prefix"] != prefix:
                self.problem(
                    document,
                    where,
                    f"{origin}: fieldPath {field_path!r} does not name a container image of a "
                    f'{kind} ({prefix}.containers[?(@.name=="NAME")].image or '
                    f"{prefix}.containers[N].image)",
                )
                continue
            name = match["dq"] if match["dq"] is not None else match["sq"]
            index = int(match["index"]) if match["index"] is not None else None
            found = self.container(
                document, (*base, *POD_SPEC[kind]), (match["list"],), name, index
            )
            if found is None:
                self.problem(
                    document, where, f"{origin}: fieldPath {field_path!r} matches no container"
                )
                continue
            self.value(document, (*found, "image"), tag, f"{kind} trigger {tag}", where)

    def tag_of(
        self, source: Any, namespace: str, document: int, where: JsonPath, origin: str
    ) -> str | None:
        if not isinstance(source, dict) or source.get("kind") != IMAGE_STREAM_TAG:
            kind = source.get("kind") if isinstance(source, dict) else None
            self.problem(document, where, f"{origin}: from.kind {kind!r} is not ImageStreamTag")
            return None
        ns = source.get("namespace") or namespace
        if "${" in f"{source.get('name', '')}{ns}":
            return None  # a Template parameter: the tag is known only when it is processed
        parts = split_tag(str(source.get("name", "")), str(ns))
        if parts is None or "/" in str(source.get("name", "")):
            self.problem(
                document, where, f"{origin}: from.name {source.get('name')!r} is not stream:tag"
            )
            return None
        return tag_key(*parts)

    # -- DeploymentConfig and BuildConfig -----------------------------------------------------

    def deployment_config(self, document: int, base: JsonPath, obj: dict[str, Any]) -> None:
        namespace = _namespace(obj, self.default_namespace)
        for number, trigger in enumerate(_get(obj, ("spec", "triggers")) or ()):
            if not isinstance(trigger, dict) or trigger.get("type") != "ImageChange":
                continue
            where = (*base, "spec", "triggers", number)
            params = trigger.get("imageChangeParams")
            if not isinstance(params, dict) or params.get("automatic") is not True:
                continue  # automatic defaults to false, as in OpenShift's API
            origin = f"DeploymentConfig trigger {number}"
            tag = self.tag_of(
                params.get("from"),
                namespace,
                document,
                (*where, "imageChangeParams", "from"),
                origin,
            )
            if tag is None:
                continue
            names = params.get("containerNames")
            if not isinstance(names, list) or not names:
                self.problem(
                    document,
                    (*where, "imageChangeParams"),
                    f"{origin}: containerNames names no container",
                )
                continue
            spec = (*base, "spec", "template", "spec")
            for name in names:
                found = self.container(document, spec, ("containers", "initContainers"), name, None)
                if found is None:
                    self.problem(
                        document,
                        (*where, "imageChangeParams", "containerNames"),
                        f"{origin}: no container named {name!r}",
                    )
                    continue
                self.value(
                    document, (*found, "image"), tag, f"DeploymentConfig trigger {tag}", where
                )

    def build_config(self, document: int, base: JsonPath, obj: dict[str, Any]) -> None:
        namespace = _namespace(obj, self.default_namespace)
        for number, trigger in enumerate(_get(obj, ("spec", "triggers")) or ()):
            if not isinstance(trigger, dict) or trigger.get("type") != "ImageChange":
                continue
            change = trigger.get("imageChange")
            if not isinstance(change, dict) or change.get("paused") is True:
                continue
            source = change.get("from")
            if source is None:
                continue  # the strategy's own ImageStreamTag: OpenShift resolves it
            where = (*base, "spec", "triggers", number, "imageChange", "from")
            origin = f"BuildConfig trigger {number}"
            tag = self.tag_of(source, namespace, document, where, origin)
            if tag is None:
                continue
            strategy = (*base, "spec", "strategy")
            for key in STRATEGIES:
                image = _get(obj, ("spec", "strategy", key, "from"))
                if isinstance(image, dict) and image.get("kind") == DOCKER_IMAGE:
                    self.value(
                        document,
                        (*strategy, key, "from", "name"),
                        tag,
                        f"BuildConfig trigger {tag}",
                        where,
                    )


def find(source: Source, default_namespace: str) -> tuple[list[Slot], list[Problem]]:
    """Every trigger slot in ``source``, and the triggers that cannot be followed."""
    finder = _Finder(source, default_namespace)
    for document, base, obj in objects(source):
        kind = obj.get("kind")
        if kind == "DeploymentConfig":
            finder.deployment_config(document, base, obj)
        elif kind == "BuildConfig":
            finder.build_config(document, base, obj)
        finder.annotation(document, base, obj)
    return finder.slots, finder.problems
