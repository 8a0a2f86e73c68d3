"""OpenShift's defaulting: every empty, null or omitted form the API accepts loads as the default.

Field by field through image.openshift.io/v1 ImageStream (openshift/api image/v1/types.go: the
ImageStream, ImageStreamSpec, ImageLookupPolicy, TagReference, TagImportPolicy,
TagReferencePolicy and ImageStreamStatus types, core/v1 ObjectReference for ``from`` and
meta/v1 ObjectMeta): Go's decoder reads null as the zero value, and the API server defaults an
empty ``importMode`` to Legacy and an empty ``referencePolicy.type`` to Source.
"""

from __future__ import annotations

import pytest

from reconciler.config import Config
from reconciler.imagestream import ImageStream, parse_streams

PATH = "streams/shop/app.yaml"


def stream_text(
    meta: str = "", spec: str = "", tag: str = "", source: str = "", top: str = ""
) -> str:
    return (
        "apiVersion: image.openshift.io/v1\n"
        "kind: ImageStream\n"
        "metadata:\n"
        "  name: app\n"
        f"{meta}"
        "spec:\n"
        f"{spec}"
        "  tags:\n"
        "  - name: '1.0'\n"
        f"{tag}"
        "    from:\n"
        "      kind: DockerImage\n"
        "      name: quay.io/shop/app:1.0\n"
        f"{source}"
        f"{top}"
    )


def load(text: str) -> ImageStream:
    result = parse_streams({PATH: text.encode()}, Config())
    assert [str(p) for p in result.problems] == []
    [stream] = result.streams
    return stream


BASELINE = stream_text()

META = [
    "  namespace: ''\n",
    "  namespace: null\n",
    "  namespace: shop\n",
    "  labels: null\n",
    "  labels: {}\n",
    "  annotations: null\n",
    "  annotations: {}\n",
    "  generation: null\n",
    "  generation: 3\n",
    "  generateName: null\n",
    "  generateName: ''\n",
    "  uid: ''\n",
    "  uid: null\n",
    "  resourceVersion: ''\n",
    "  selfLink: null\n",
    "  creationTimestamp: null\n",
    "  deletionTimestamp: null\n",
    "  deletionGracePeriodSeconds: null\n",
    "  ownerReferences: null\n",
    "  ownerReferences: []\n",
    "  finalizers: null\n",
    "  managedFields: null\n",
    "  clusterName: ''\n",
]
SPEC = [
    "  lookupPolicy: {}\n",
    "  lookupPolicy: null\n",
    "  lookupPolicy: {local: null}\n",
    "  lookupPolicy: {local: false}\n",
    "  dockerImageRepository: ''\n",
    "  dockerImageRepository: null\n",
]
TAG = [
    "    annotations: null\n",
    "    annotations: {}\n",
    "    reference: null\n",
    "    reference: false\n",
    "    generation: null\n",
    "    generation: 0\n",
    "    importPolicy: {}\n",
    "    importPolicy: null\n",
    "    importPolicy: {scheduled: null, insecure: null, importMode: null}\n",
    "    importPolicy: {scheduled: false, insecure: false}\n",
    "    importPolicy: {importMode: ''}\n",
    "    importPolicy: {importMode: Legacy}\n",
    "    referencePolicy: {}\n",
    "    referencePolicy: null\n",
    "    referencePolicy: {type: ''}\n",
    "    referencePolicy: {type: null}\n",
    "    referencePolicy: {type: Source}\n",
]
SOURCE = [
    "      namespace: ''\n",
    "      namespace: null\n",
    "      apiVersion: ''\n",
    "      uid: ''\n",
    "      resourceVersion: ''\n",
    "      fieldPath: ''\n",
]
TOP = [
    "status: {dockerImageRepository: ''}\n",
    "status: null\n",
    "status: {}\n",
    "status: {dockerImageRepository: '', tags: null}\n",
]


@pytest.mark.parametrize("meta", META)
def test_metadata_defaults_load_as_omitted(meta: str) -> None:
    """An empty, null or server-set metadata field means what omitting it means."""
    assert load(stream_text(meta=meta)) == load(BASELINE)


@pytest.mark.parametrize("spec", SPEC)
def test_spec_defaults_load_as_omitted(spec: str) -> None:
    """An empty or null lookupPolicy or dockerImageRepository is the default."""
    assert load(stream_text(spec=spec)) == load(BASELINE)


@pytest.mark.parametrize("tag", TAG)
def test_tag_defaults_load_as_omitted(tag: str) -> None:
    """An empty or null importPolicy, importMode, referencePolicy, … is the default, with the
    same spec hash (no re-import when a tool writes the default out)."""
    stream, baseline = load(stream_text(tag=tag)), load(BASELINE)
    assert stream == baseline
    assert stream.tags[0].spec_hash("shop") == baseline.tags[0].spec_hash("shop")


@pytest.mark.parametrize("source", SOURCE)
def test_from_defaults_load_as_omitted(source: str) -> None:
    """from is a core/v1 ObjectReference: an empty namespace and its other fields change nothing."""
    assert load(stream_text(source=source)) == load(BASELINE)


@pytest.mark.parametrize("top", TOP)
def test_status_in_any_form_is_ignored(top: str) -> None:
    """status, empty, null or as the server fills it, is ignored."""
    assert load(stream_text(top=top)) == load(BASELINE)


@pytest.mark.parametrize("spec", ["spec: null\n", "spec: {}\n", "spec:\n  tags: null\n"])
def test_a_stream_with_an_empty_spec_loads_with_no_tags(spec: str) -> None:
    """spec null, {} or with tags: null is a stream without tags."""
    text = "apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name: app\n" + spec
    stream = load(text)
    assert stream.tags == () and not stream.lookup_local


def test_a_null_annotation_value_is_an_empty_string() -> None:
    """annotations: {x: null} decodes to x: '' in the API; a hold with no reason reads 'held'."""
    text = stream_text(tag="    annotations: {streamlock.dev/hold: null}\n")
    assert load(text).tags[0].hold == "held"
