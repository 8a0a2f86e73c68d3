"""Consumer rewrites on bad input: located problems, files left whole, the others still follow."""

from __future__ import annotations

from reconciler.consumers.scan import rewrite, scan
from reconciler.consumers.slots import Pin, pins
from reconciler.imagestream import TagReference
from reconciler.lockfile import LockEntry, StreamLock

DIGEST = "sha256:" + "1" * 64
PINS = {"shop/app:prod": Pin(f"quay.io/shop/app@{DIGEST}", DIGEST, "1.4")}


def deployment(
    field_path: str, tag: str = "app:prod", image: str = "quay.io/shop/app:1.3"
) -> bytes:
    return (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata:\n"
        "  name: web\n"
        "  namespace: shop\n"
        "  annotations:\n"
        "    image.openshift.io/triggers: >-\n"
        f'      [{{"from":{{"kind":"ImageStreamTag","name":"{tag}"}},'
        f'"fieldPath":"{field_path}"}}]\n'
        "spec:\n"
        "  template:\n"
        "    spec:\n"
        "      containers:\n"
        "      - name: web\n"
        f"        image: {image}\n"
    ).encode()


NAMED = 'spec.template.spec.containers[?(@.name==\\"web\\")].image'


def test_named_container_follows_its_tag():
    """A trigger naming a container by name rewrites that container's image."""
    result = rewrite("deploy/web.yaml", deployment(NAMED), PINS, "default")
    assert result.problems == ()
    assert f"image: quay.io/shop/app@{DIGEST}\n".encode() in result.data


def test_unmatched_field_path_is_located_and_file_untouched():
    """A fieldPath naming no container is an error at the annotation; the file is not written."""
    data = deployment('spec.template.spec.containers[?(@.name==\\"api\\")].image')
    result = rewrite("deploy/web.yaml", data, PINS, "default")
    assert result.data == data
    assert [str(p) for p in result.problems] == [
        'deploy/web.yaml:7:34: metadata.annotations["image.openshift.io/triggers"]: trigger 0: '
        "fieldPath 'spec.template.spec.containers[?(@.name==\"api\")].image' matches no container"
    ]


def test_field_path_of_another_kind_is_refused():
    """A CronJob path on a Deployment is not its pod spec: an error, as OpenShift's grammar says."""
    data = deployment("spec.jobTemplate.spec.template.spec.containers[0].image")
    result = rewrite("deploy/web.yaml", data, PINS, "default")
    assert result.data == data and "does not name a container image of a Deployment" in str(
        result.problems[0]
    )


def test_trigger_naming_a_missing_tag_is_located():
    """A trigger naming a tag no lock has is an error at the image it would rewrite."""
    data = deployment(NAMED, tag="app:nightly")
    result = rewrite("deploy/web.yaml", data, PINS, "default")
    assert result.data == data
    assert [str(p) for p in result.problems] == [
        "deploy/web.yaml:14:16: Deployment trigger shop/app:nightly: shop/app:nightly is not a "
        "tag of any image stream lock"
    ]


def test_broken_yaml_is_a_located_problem():
    """A consumer that is not valid YAML is reported with its line and left alone."""
    data = b"kind: Deployment\nmetadata: {name: [\n"
    result = rewrite("deploy/broken.yaml", data, PINS, "default")
    assert result.data == data and result.problems[0].path == "deploy/broken.yaml"
    assert result.problems[0].line == 3


def test_value_shared_through_an_alias_is_not_rewritten():
    """An image reached through a YAML alias would change elsewhere too: refused, located."""
    data = b'base: &img quay.io/shop/app:1.3\nimage: *img # {"$imagestream": "shop/app:prod"}\n'
    result = rewrite("deploy/values.yaml", data, PINS, "shop")
    assert result.data == data and "alias" in str(result.problems[0])


def test_marker_inside_a_quoted_value_is_not_a_setter():
    """Text that looks like a marker inside a quoted string is a value, not a comment."""
    data = b'note: "# {\\"$imagestream\\": \\"shop/app:prod\\"}"\n'
    assert scan("deploy/values.yaml", data, "shop").slots == ()


def test_setter_marker_without_a_value_is_located():
    """A marker after a key holding a mapping is an error there; alone on a line, a comment."""
    data = b'image:\n  # {"$imagestream": "shop/app:prod"}\n  name: x\n'
    found = scan("deploy/values.yaml", data, "shop")
    assert [str(p) for p in found.problems] == []  # a comment line alone is a comment
    data = b'image: # {"$imagestream": "shop/app:prod"}\n  name: x\n'
    found = scan("deploy/values.yaml", data, "shop")
    assert [str(p) for p in found.problems] == [
        "deploy/values.yaml:1:8: setter: no value on this line to set"
    ]


def test_deployment_config_without_automatic_is_skipped():
    """An ImageChange trigger without automatic: true is not followed, as in OpenShift."""
    data = (
        b"kind: DeploymentConfig\nmetadata: {name: dc, namespace: shop}\n"
        b"spec:\n  template:\n    spec:\n      containers:\n      - {name: a, image: x:1}\n"
        b"  triggers:\n  - type: ImageChange\n    imageChangeParams:\n"
        b"      containerNames: [a]\n      from: {kind: ImageStreamTag, name: app:prod}\n"
    )
    assert scan("deploy/dc.yaml", data, "shop").slots == ()


def test_deployment_config_naming_a_missing_container_is_located():
    """containerNames naming no container is an error at containerNames."""
    data = (
        b"kind: DeploymentConfig\nmetadata: {name: dc, namespace: shop}\n"
        b"spec:\n  template:\n    spec:\n      containers:\n      - {name: a, image: x:1}\n"
        b"  triggers:\n  - type: ImageChange\n    imageChangeParams:\n      automatic: true\n"
        b"      containerNames: [b]\n      from: {kind: ImageStreamTag, name: app:prod}\n"
    )
    found = scan("deploy/dc.yaml", data, "shop")
    assert [str(p) for p in found.problems] == [
        "deploy/dc.yaml:12:23: spec.triggers[0].imageChangeParams.containerNames: "
        "DeploymentConfig trigger 0: no container named 'b'"
    ]


def test_pins_follow_image_stream_tags_to_the_upstream_tag():
    """A follower's pin carries the registry tag its image came from, for :tag setters."""
    test = LockEntry(
        TagReference("DockerImage", "quay.io/shop/app:1.4"), DIGEST, f"q@{DIGEST}", "h"
    )
    latest = LockEntry(TagReference("ImageStreamTag", "app:test"), DIGEST, f"q@{DIGEST}", "h")
    found = pins({("shop", "app"): StreamLock("shop", "app", {"test": test, "latest": latest})})
    assert found["shop/app:latest"].tag == "1.4"
    assert found["shop/app:latest"].part("from") == f"q:1.4@{DIGEST}"


def test_plain_value_in_a_flow_mapping_is_quoted_so_yaml_1_1_parsers_read_it():
    """``{name: web, image: x:1}`` gets a double-quoted pin: libyaml refuses a plain ``a@b:c``."""
    from ruamel.yaml import YAML

    data = (
        b"kind: Pod\nmetadata:\n  name: p\n  namespace: shop\n  annotations:\n"
        b'    image.openshift.io/triggers: \'[{"from":{"kind":"ImageStreamTag","name":"app:prod"},'
        b'"fieldPath":"spec.containers[0].image"}]\'\n'
        b"spec:\n  containers:\n  - {name: web, image: quay.io/shop/app:1.3}\n"
    )
    result = rewrite("deploy/pod.yaml", data, PINS, "shop")
    assert f'image: "quay.io/shop/app@{DIGEST}"}}'.encode() in result.data
    loaded = YAML(typ="safe").load(result.data)
    assert loaded["spec"]["containers"][0]["image"] == f"quay.io/shop/app@{DIGEST}"
