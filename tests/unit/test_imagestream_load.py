"""Loading stream files: located problems, per-file and per-stream isolation, namespaces."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest

from reconciler.config import Config
from reconciler.imagestream import (
    DOCKER_IMAGE,
    IMAGE_STREAM_TAG,
    LOCAL,
    StreamSet,
    load_streams,
    parse_streams,
    validate_repo,
)

CASES = Path(__file__).parent.parent / "cases" / "validate"
DIGEST = "sha256:" + "ab" * 32

APP = """\
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app
spec:
  tags:
  - name: "1.0"
    from:
      kind: DockerImage
      name: quay.io/shop/app:1.0
"""


DEFAULTS = Config()


def streams(text: str, path: str = "streams/shop/app.yaml", config: Config = DEFAULTS) -> StreamSet:
    return parse_streams({path: dedent(text).encode()}, config)


def problems(text: str, path: str = "streams/shop/app.yaml") -> list[str]:
    return [str(p) for p in streams(text, path).problems]


def one_tag(tag: str) -> str:
    """A stream whose second tag is ``tag`` (YAML lines indented for spec.tags)."""
    return APP + tag


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_unknown_from_kind_is_located_at_the_value() -> None:
    """An unknown from.kind names the allowed kinds at file:line:col of the value."""
    text = one_tag("""\
  - name: "1.1"
    from:
      kind: Nonsense
      name: quay.io/shop/app:1.1
""")
    assert problems(text) == [
        "streams/shop/app.yaml:13:13: spec.tags[1].from.kind: 'Nonsense' is not one of "
        "DockerImage, ImageStreamTag, ImageStreamImage"
    ]


def test_bad_tag_name_is_located() -> None:
    """A tag name outside the tag-name pattern is reported with the rule it breaks."""
    text = one_tag("""\
  - name: "bad tag!"
    from: {kind: DockerImage, name: quay.io/shop/app:1.1}
""")
    (problem,) = problems(text)
    assert problem.startswith(
        "streams/shop/app.yaml:11:11: spec.tags[1].name: 'bad tag!' is not a valid tag name ("
    )


def test_tag_name_with_trailing_newline_is_refused() -> None:
    """Pattern ``$`` is ECMA's: a name ending in a newline does not slip through."""
    text = one_tag("""\
  - name: "latest\\n"
    from: {kind: DockerImage, name: quay.io/shop/app:1.1}
""")
    (problem,) = problems(text)
    assert "spec.tags[1].name: 'latest\\n' is not a valid tag name" in problem


def test_stream_name_must_be_dns_1123() -> None:
    """Stream names follow DNS-1123 (lower case, no underscores)."""
    (problem,) = problems(APP.replace("name: app", "name: My_App"))
    assert problem.startswith(
        "streams/shop/app.yaml:4:9: metadata.name: 'My_App' is not a valid stream name "
        "(a DNS-1123 subdomain"
    )


def test_namespace_must_be_a_dns_1123_label() -> None:
    """metadata.namespace may not contain dots (a label, not a subdomain)."""
    text = APP.replace("  name: app\n", "  name: app\n  namespace: shop.eu\n")
    (problem,) = problems(text)
    assert problem.startswith(
        "streams/shop/app.yaml:5:14: metadata.namespace: 'shop.eu' is not a valid namespace name"
    )


def test_duplicate_tag_names_reject_the_stream_at_the_duplicate() -> None:
    """A second tag of the same name is an error for that stream, pointing at the duplicate."""
    text = one_tag("""\
  - name: "1.0"
    from: {kind: DockerImage, name: quay.io/shop/app:1.1}
""")
    result = streams(text)
    assert [str(p) for p in result.problems] == [
        "streams/shop/app.yaml:11:11: spec.tags[1].name: duplicate tag '1.0' "
        "(first defined on line 7)"
    ]
    assert result.streams == ()


def test_duplicate_tag_is_reported_beside_schema_errors() -> None:
    """A stream with a schema error still gets its duplicate tag names reported."""
    text = one_tag("""\
  - name: "1.0"
    from: {kind: Nonsense, name: x}
""")
    assert problems(text) == [
        "streams/shop/app.yaml:11:11: spec.tags[1].name: duplicate tag '1.0' "
        "(first defined on line 7)",
        "streams/shop/app.yaml:12:18: spec.tags[1].from.kind: 'Nonsense' is not one of "
        "DockerImage, ImageStreamTag, ImageStreamImage",
    ]


def test_a_tag_without_from_is_skipped_as_openshift_accepts_it() -> None:
    """from is optional in the API (a tag images are pushed to): the stream loads without it."""
    text = one_tag("""\
  - name: "1.1"
    importPolicy: {scheduled: true}
""")
    result = streams(text)
    assert result.problems == ()
    [stream] = result.streams
    assert [t.name for t in stream.tags] == ["1.0"]


def test_yaml_syntax_error_is_located() -> None:
    """A syntax error names the line and column where the parser stopped."""
    text = APP + "  - name: [unclosed\n"
    (problem,) = problems(text)
    assert problem.startswith("streams/shop/app.yaml:12:1: not valid YAML: ")


def test_unknown_field_is_located_at_the_key_with_a_suggestion() -> None:
    """A misspelt field is caught at its key, with the closest known name."""
    text = APP.replace("spec:\n", "spec:\n  lookupPolicy: {local: true}\n").replace(
        "    from:", "    refrencePolicy: {type: Local}\n    from:"
    )
    assert problems(text) == [
        "streams/shop/app.yaml:9:5: spec.tags[0].refrencePolicy: unknown field "
        "'refrencePolicy'; did you mean 'referencePolicy'?"
    ]


def test_unquoted_number_tag_name_asks_for_quotes() -> None:
    """``name: 1.10`` is a YAML number; the message says to quote it."""
    (problem,) = problems(APP.replace('name: "1.0"', "name: 1.10"))
    assert problem == (
        "streams/shop/app.yaml:7:11: spec.tags[0].name: expected a string, got number 1.1; quote it"
    )


def test_model_values_come_from_the_spec() -> None:
    """Tag fields, annotations, lookupPolicy and lines map into TagSpec and ImageStream."""
    text = """\
    apiVersion: image.openshift.io/v1
    kind: ImageStream
    metadata:
      name: app
      annotations: {team: shop}
    spec:
      lookupPolicy: {local: true}
      tags:
      - name: latest
        annotations: {streamlock.dev/hold: "incident 42"}
        from: {kind: ImageStreamTag, name: "1.0", namespace: shop}
        importPolicy: {scheduled: true, insecure: true, importMode: PreserveOriginal}
        referencePolicy: {type: Local}
    """
    (stream,) = streams(text).streams
    (tag,) = stream.tags
    assert (stream.key, stream.lookup_local, dict(stream.annotations)) == (
        ("shop", "app"),
        True,
        {"team": "shop"},
    )
    assert (stream.path, stream.line) == ("streams/shop/app.yaml", 1)
    assert (tag.source.kind, tag.source.name, tag.source.namespace) == (
        IMAGE_STREAM_TAG,
        "1.0",
        "shop",
    )
    assert (tag.scheduled, tag.insecure, tag.import_mode, tag.reference_policy) == (
        True,
        True,
        "PreserveOriginal",
        LOCAL,
    )
    assert (tag.hold, tag.line) == ("incident 42", 9)


def test_list_and_image_stream_list_hold_several_streams() -> None:
    """``kind: List`` and ``kind: ImageStreamList`` wrappers yield each item."""
    item = dedent(APP).replace("\n", "\n  ").rstrip()
    for kind in ("List", "ImageStreamList"):
        text = f"apiVersion: v1\nkind: {kind}\nitems:\n- {item}\n- {item.replace('app', 'web')}\n"
        result = streams(text)
        assert result.problems == ()
        assert [(s.name, s.line) for s in result.streams] == [("app", 4), ("web", 14)]


def test_multi_document_file_holds_several_streams() -> None:
    """Several YAML documents in one file are several streams."""
    text = APP + "---\n" + APP.replace("name: app", "name: web")
    result = streams(text)
    assert [(s.name, s.line) for s in result.streams] == [("app", 1), ("web", 12)]


def test_a_bad_item_in_a_list_skips_only_that_item() -> None:
    """Per-stream isolation: a List item with an error does not drop its siblings."""
    item = dedent(APP).replace("\n", "\n  ").rstrip()
    bad = item.replace("app", "web").replace("DockerImage", "Docker")
    result = streams(f"apiVersion: v1\nkind: List\nitems:\n- {item}\n- {bad}\n")
    assert [s.name for s in result.streams] == ["app"]
    assert [p.line for p in result.problems] == [22]
    assert "items[1].spec.tags[0].from.kind" in result.problems[0].message


@pytest.mark.parametrize(
    ("path", "namespace_line", "expected"),
    [
        ("streams/shop/app.yaml", "  namespace: billing\n", "billing"),
        ("streams/shop/app.yaml", "", "shop"),
        ("streams/shop/deeper/app.yaml", "", "shop"),
        ("streams/app.yaml", "", "fallback"),
    ],
)
def test_namespace_is_metadata_then_folder_then_default(
    path: str, namespace_line: str, expected: str
) -> None:
    """metadata.namespace wins, then the first folder under streams/, then defaultNamespace."""
    text = APP.replace("  name: app\n", "  name: app\n" + namespace_line)
    result = streams(text, path, Config(default_namespace="fallback"))
    assert [s.namespace for s in result.streams] == [expected]


def test_folder_that_is_no_namespace_name_is_reported() -> None:
    """A folder name that is not a DNS-1123 label cannot be a namespace."""
    (problem,) = problems(APP, "streams/Shop_Team/app.yaml")
    assert problem.startswith("streams/Shop_Team/app.yaml:4:3: metadata: folder 'Shop_Team'")


def test_status_is_ignored() -> None:
    """Whatever the status block holds, it is neither checked nor used."""
    text = APP + "status:\n  tags: [{tag: x, items: null}]\n  anything: {goes: here}\n"
    assert streams(text).problems == ()


def test_oc_get_output_with_nulls_loads() -> None:
    """Files exactly as ``oc get is -o yaml`` / ``-o json`` print them load without problems."""
    result = load_streams(CASES / "oc-export", Config())
    assert result.problems == ()
    assert [s.name for s in result.streams] == ["httpd", "ruby"]
    ruby = result.streams[1]
    assert [t.name for t in ruby.tags] == ["3.1-ubi8", "latest", "3.0"]
    assert ruby.tags[2].reference is True


def test_json_stream_file_is_located_by_line() -> None:
    """JSON files are read with positions like YAML files."""
    text = '{"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",\n "metadata": {}}\n'
    assert problems(text, "streams/shop/app.json") == [
        "streams/shop/app.json:2:14: metadata: 'name' is a required property"
    ]


def test_a_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    """Per-file isolation: a broken file is reported and the other files still load."""
    write(tmp_path, "streams/shop/a.yaml", "kind: [\n")
    write(tmp_path, "streams/shop/b.yaml", APP)
    result = load_streams(tmp_path, Config())
    assert [s.name for s in result.streams] == ["app"]
    assert [p.path for p in result.problems] == ["streams/shop/a.yaml"]
    assert result.files == ("streams/shop/a.yaml", "streams/shop/b.yaml")


def test_stream_defined_twice_keeps_the_first_and_reports_the_second() -> None:
    """The same namespace/name in two files is an error at the second definition."""
    result = parse_streams(
        {"streams/shop/b.yaml": APP.encode(), "streams/shop/a.yaml": APP.encode()}, Config()
    )
    assert [s.path for s in result.streams] == ["streams/shop/a.yaml"]
    assert [str(p) for p in result.problems] == [
        "streams/shop/b.yaml:4:9: metadata.name: stream shop/app is already defined at "
        "streams/shop/a.yaml:1"
    ]


@pytest.mark.parametrize(
    ("name", "valid"),
    [("latest", True), ("app:latest", True), ("my.app:1.0", True), (":latest", False),
     ("a:b:c", False), ("App:latest", False), ("app:bad tag", False)],
)  # fmt: skip
def test_image_stream_tag_name_forms(name: str, valid: bool) -> None:
    """ImageStreamTag names are ``<tag>`` or ``<stream>:<tag>``."""
    text = APP.replace("kind: DockerImage", "kind: ImageStreamTag").replace(
        "name: quay.io/shop/app:1.0", f"name: {name!r}"
    )
    found = problems(text)
    if valid:
        assert found == []
    else:
        assert found[0].endswith("(use <tag> or <stream>:<tag>)")


@pytest.mark.parametrize(
    ("name", "valid"),
    [(f"app@{DIGEST}", True), (f"@{DIGEST}", False), ("app@sha256:abc", False),
     (f"app:{DIGEST}", False), (f"app@{DIGEST}\n", False)],
)  # fmt: skip
def test_image_stream_image_name_form(name: str, valid: bool) -> None:
    """ImageStreamImage names are ``<stream>@sha256:<64 hex>`` (full digests only)."""
    text = APP.replace("kind: DockerImage", "kind: ImageStreamImage").replace(
        "name: quay.io/shop/app:1.0", f"name: {name!r}"
    )
    found = problems(text)
    if valid:
        assert found == []
    else:
        assert "is not a valid ImageStreamImage name" in found[0]


def test_reference_true_needs_a_digest() -> None:
    """``reference: true`` with a mutable tag is an error at the pull spec."""
    text = APP.replace("    from:", "    reference: true\n    from:")
    assert problems(text) == [
        "streams/shop/app.yaml:11:13: spec.tags[0].from.name: reference: true needs a digest "
        "pull spec (name@sha256:...), got 'quay.io/shop/app:1.0'"
    ]


def test_reference_true_with_a_digest_is_accepted() -> None:
    """``reference: true`` with ``name@sha256:`` is a valid pin."""
    text = APP.replace("    from:", "    reference: true\n    from:").replace(
        "app:1.0", f"app@{DIGEST}"
    )
    (stream,) = streams(text).streams
    assert stream.tags[0].reference is True


def test_docker_image_names_must_parse() -> None:
    """A DockerImage name that is no image reference is reported at from.name."""
    (problem,) = problems(APP.replace("quay.io/shop/app:1.0", "quay.io/Shop/App:1.0"))
    assert problem.startswith(
        "streams/shop/app.yaml:10:13: spec.tags[0].from.name: invalid image reference "
        "'quay.io/Shop/App:1.0'"
    )


def test_local_reference_policy_without_local_registry_is_fine() -> None:
    """referencePolicy Local needs no localRegistry (the source pull spec is kept)."""
    text = APP.replace("    from:", "    referencePolicy: {type: Local}\n    from:")
    (stream,) = streams(text, config=Config(local_registry=None)).streams
    assert (stream.tags[0].reference_policy, stream.tags[0].source.kind) == (LOCAL, DOCKER_IMAGE)


def test_symlink_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    """A stream file linking outside the repository is refused; links inside are followed."""
    outside = write(tmp_path / "elsewhere", "app.yaml", APP)
    root = tmp_path / "repo"
    write(root, "streams/shop/web.yaml", APP.replace("name: app", "name: web"))
    os.symlink(outside, root / "streams/shop/app.yaml")
    os.symlink(root / "streams/shop", root / "streams/shop-again")
    (root / "streams/billing").mkdir()
    os.symlink(root / "streams/shop/web.yaml", root / "streams/billing/web.yaml")
    result = load_streams(root, Config())
    assert [str(p) for p in result.problems] == [
        "streams/shop/app.yaml:1:1: symlink points outside the repository"
    ]
    assert [s.key for s in result.streams] == [("billing", "web"), ("shop", "web")]


def test_validate_repo_reports_config_streams_and_locks_sorted(tmp_path: Path) -> None:
    """validate_repo gathers every problem, config first by path order, all located."""
    write(tmp_path, "streamlock.yaml", "historyLimt: 3\n")
    write(tmp_path, "streams/shop/app.yaml", APP.replace("DockerImage", "Docker"))
    write(
        tmp_path,
        "locks/shop/app.lock.yaml",
        "apiVersion: streamlock/v1\nkind: ImageStreamLock\n"
        "metadata: {name: web, namespace: shop}\ntags: {}\n",
    )
    assert [str(p) for p in validate_repo(tmp_path)] == [
        "locks/shop/app.lock.yaml:3:11: metadata: describes shop/web but the file is for shop/app",
        "streamlock.yaml:1:1: historyLimt: unknown field 'historyLimt'; did you mean "
        "'historyLimit'?",
        "streams/shop/app.yaml:9:13: spec.tags[0].from.kind: 'Docker' is not one of "
        "DockerImage, ImageStreamTag, ImageStreamImage",
    ]


def test_policy_reports_registries_outside_the_allowlist() -> None:
    """With policy checks, a DockerImage host outside allowedRegistries is located."""
    config = Config(allowed_registries=("*.redhat.io",))
    result = parse_streams({"streams/shop/app.yaml": APP.encode()}, config, policy=True)
    assert [str(p) for p in result.problems] == [
        "streams/shop/app.yaml:10:13: spec.tags[0].from.name: registry quay.io is not in "
        "allowedRegistries of streamlock.yaml"
    ]


def test_policy_reports_insecure_imports_from_secure_registries() -> None:
    """importPolicy.insecure needs the registry marked insecure (loopback ones excepted)."""
    text = APP.replace("    from:", "    importPolicy: {insecure: true}\n    from:")
    local = text.replace("quay.io", "localhost:5000").replace("name: app", "name: web")
    files = {"streams/shop/app.yaml": text.encode(), "streams/shop/web.yaml": local.encode()}
    result = parse_streams(files, Config(), policy=True)
    assert [str(p) for p in result.problems] == [
        "streams/shop/app.yaml:8:30: spec.tags[0].importPolicy.insecure: registry quay.io is not "
        "marked insecure in streamlock.yaml"
    ]


def test_policy_reports_cross_namespace_use_without_a_grant() -> None:
    """Following another namespace's tag needs that namespace's pullers to include ours."""
    text = APP.replace("kind: DockerImage", "kind: ImageStreamTag").replace(
        "name: quay.io/shop/app:1.0", "name: base:1\n      namespace: platform"
    )
    base = APP.replace("name: app", "name: base").replace('"1.0"', '"1"')
    files = {"streams/shop/app.yaml": text.encode(), "streams/platform/base.yaml": base.encode()}
    result = parse_streams(files, Config(), policy=True)
    assert [str(p) for p in result.problems] == [
        "streams/shop/app.yaml:11:18: spec.tags[0].from.namespace: namespace shop may not use "
        "images of platform (add it to access.platform.pullers in streamlock.yaml)"
    ]


def test_loading_for_a_pass_keeps_streams_that_break_policy() -> None:
    """Without policy checks (a pass), such streams load and no problem is reported."""
    config = Config(allowed_registries=("*.redhat.io",))
    result = parse_streams({"streams/shop/app.yaml": APP.encode()}, config)
    assert ([s.key for s in result.streams], result.problems) == ([("shop", "app")], ())


def test_validate_repo_checks_lock_schema(tmp_path: Path) -> None:
    """A hand-edited lock with a short digest is located."""
    write(
        tmp_path,
        "locks/shop/app.lock.yaml",
        "apiVersion: streamlock/v1\nkind: ImageStreamLock\nmetadata: {name: app, namespace: shop}\n"
        "tags:\n  latest:\n    from: {kind: DockerImage, name: quay.io/shop/app:1}\n"
        "    image: sha256:abc\n    dockerImageReference: quay.io/shop/app@sha256:abc\n"
        "    specHash: 0123abcd\n",
    )
    (problem,) = validate_repo(tmp_path)
    assert str(problem).startswith(
        "locks/shop/app.lock.yaml:7:12: tags.latest.image: 'sha256:abc' is not a valid digest"
    )


def test_validate_repo_accepts_the_example_repository() -> None:
    """The shipped example repository validates clean."""
    assert validate_repo(Path(__file__).parents[2] / "example-repo") == []


def named(name: str, namespace: str = "shop") -> str:
    return APP.replace("  name: app\n", f"  name: {name}\n  namespace: {namespace}\n")


def test_stream_name_of_245_characters_is_the_longest_a_lock_file_allows() -> None:
    """245 + len('.lock.yaml') is NAME_MAX (255 bytes): 245 loads, 246 is located and explained."""
    ok = "a" * 60 + "." + "b" * 184
    assert len(ok) == 245 and streams(named(ok)).problems == ()
    assert problems(named(ok + "c")) == [
        "streams/shop/app.yaml:4:9: metadata.name: a stream name of 246 characters is too long: "
        "its lock file <name>.lock.yaml would need a file name of 256 bytes, over the 255 bytes "
        "file systems allow (NAME_MAX); use at most 245 characters"
    ]


def test_namespace_and_name_together_follow_openshift() -> None:
    """OpenShift refuses 'namespace/name' over 255 characters; the limit is explained."""
    namespace = "n" * 63
    assert streams(named("a" * 191, namespace)).problems == ()
    [problem] = problems(named("a" * 192, namespace))
    assert problem.startswith("streams/shop/app.yaml:4:9: metadata.name: ")
    assert "is 256 characters long; OpenShift allows at most 255 for 'namespace/name'" in problem
    assert problem.endswith("may have at most 191 characters")


def test_stream_name_limits_hold_in_list_items() -> None:
    """A List's item is located at its own metadata.name."""
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: image.openshift.io/v1\n  kind: ImageStream\n"
        f"  metadata:\n    name: {'x' * 250}\n    namespace: shop\n"
    )
    [problem] = problems(text)
    assert problem.startswith("streams/shop/app.yaml:7:11: items[0].metadata.name: a stream name")
