"""Edits of stream files: exactly the intended lines change; comments, order and quoting survive."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.config import Config
from reconciler.errors import InputError
from reconciler.imagestream import TagReference, parse_streams
from reconciler.streamedit import (
    StreamLocation,
    _merge,
    _same_data,
    _splice,
    delete_tag,
    implied_namespace,
    new_stream_text,
    set_lookup_policy,
    set_tag,
    stream_file_path,
)

DIGEST = "sha256:" + "4f1c" * 16
PIN = TagReference("ImageStreamImage", f"app@{DIGEST}")
ALIAS = TagReference("ImageStreamTag", "app:test")
DOCKER = TagReference("DockerImage", "quay.io/shop/app:1.4")
APP = StreamLocation("streams/shop/app.yaml", "shop", "app", "shop")

SOURCE = """\
# The shop's app.
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app   # keep this comment
spec:
  lookupPolicy:
    local: false
  tags:
  # test follows the registry
  - name: test
    from:
      kind: DockerImage
      name: "registry.example.com/shop/app:test"   # quoted on purpose
    importPolicy:
      scheduled: true
  # prod is promoted by hand
  - name: prod
    annotations:
      note: 'keep me'
    from: {kind: ImageStreamImage, name: 'app@sha256:aaaa'}
    referencePolicy:
      type: Local
  # trailing comment about the list
"""


def load(text: str) -> object:
    return YAML(typ="safe", pure=True).load(text)


def test_changing_a_tag_source_rewrites_only_its_from_lines():
    """Pointing an existing tag elsewhere changes its from lines and nothing else."""
    out = set_tag(SOURCE, APP, "test", PIN)
    assert out == SOURCE.replace(
        '      kind: DockerImage\n      name: "registry.example.com/shop/app:test"   #',
        f'      kind: ImageStreamImage\n      name: "app@{DIGEST}" #',
    )


def test_an_end_of_line_comment_keeps_its_column_when_the_value_fits():
    """A shorter value leaves the comment where the person aligned it."""
    out = set_tag(SOURCE, APP, "test", DOCKER)
    assert '      name: "quay.io/shop/app:1.4"                 # quoted on purpose\n' in out


def test_other_fields_of_the_tag_are_kept():
    """importPolicy, annotations and referencePolicy of the destination survive a re-tag."""
    out = set_tag(SOURCE, APP, "prod", ALIAS)
    assert out == SOURCE.replace(
        "from: {kind: ImageStreamImage, name: 'app@sha256:aaaa'}",
        "from: {kind: ImageStreamTag, name: 'app:test'}",
    )


def test_a_flow_mapping_source_keeps_its_flow_style():
    """A from written as {kind: …, name: …} stays on one line."""
    out = set_tag(SOURCE, APP, "prod", PIN)
    assert f"    from: {{kind: ImageStreamImage, name: 'app@{DIGEST}'}}\n" in out
    assert out.count("\n") == SOURCE.count("\n")


def test_a_new_tag_goes_after_the_last_tag_before_trailing_comments():
    """A new tag is appended after the last tag's lines, leaving the comment below in place."""
    out = set_tag(SOURCE, APP, "stage", DOCKER)
    assert out == SOURCE.replace(
        "  # trailing comment",
        "  - name: stage\n"
        "    from:\n"
        "      kind: DockerImage\n"
        "      name: quay.io/shop/app:1.4\n"
        "  # trailing comment",
    )


def test_a_new_tag_takes_the_from_style_of_its_siblings():
    """When the tags write from in flow style, a new tag does too."""
    text = (
        "kind: ImageStream\napiVersion: v1\nmetadata: {name: app}\nspec:\n  tags:\n"
        "  - name: a\n    from: {kind: DockerImage, name: x/a:1}\n"
    )
    out = set_tag(text, APP, "b", ALIAS)
    assert out == text + "  - name: b\n    from: {kind: ImageStreamTag, name: app:test}\n"


def test_scheduled_adds_import_policy_to_an_existing_tag():
    """--scheduled sets importPolicy.scheduled and keeps the rest of the tag."""
    text = SOURCE.replace("    referencePolicy:\n      type: Local\n", "")
    out = set_tag(text, APP, "prod", DOCKER, scheduled=True)
    assert out == text.replace(
        "    from: {kind: ImageStreamImage, name: 'app@sha256:aaaa'}\n",
        "    from: {kind: DockerImage, name: 'quay.io/shop/app:1.4'}\n"
        "    importPolicy:\n      scheduled: true\n",
    )


def test_scheduled_keeps_other_import_policy_fields():
    """An existing importPolicy gains scheduled: true next to its other fields."""
    text = SOURCE.replace("      scheduled: true\n", "      importMode: PreserveOriginal\n")
    out = set_tag(text, APP, "test", DOCKER, scheduled=True)
    assert "      importMode: PreserveOriginal\n      scheduled: true\n" in out


def test_a_key_added_at_the_end_of_a_tag_goes_above_the_next_tags_comment():
    """The comment written above the next tag stays directly above it."""
    text = SOURCE.replace("    importPolicy:\n      scheduled: true\n", "")
    out = set_tag(text, APP, "test", DOCKER, scheduled=True)
    assert out == SOURCE.replace(
        '      kind: DockerImage\n      name: "registry.example.com/shop/app:test"   #',
        '      kind: DockerImage\n      name: "quay.io/shop/app:1.4"                 #',
    )


def test_a_new_tag_with_scheduled_gets_an_import_policy():
    """A new registry tag with scheduled carries importPolicy.scheduled: true."""
    out = set_tag(SOURCE, APP, "nightly", DOCKER, scheduled=True)
    assert (
        "  - name: nightly\n    from:\n      kind: DockerImage\n"
        "      name: quay.io/shop/app:1.4\n    importPolicy:\n      scheduled: true\n"
    ) in out


def test_a_cross_namespace_source_writes_and_removes_from_namespace():
    """from.namespace is written for another namespace's source and dropped when not needed."""
    other = TagReference("ImageStreamImage", f"app@{DIGEST}", "build")
    out = set_tag(SOURCE, APP, "test", other)
    assert "      namespace: build\n" in out
    back = set_tag(out, APP, "test", PIN)
    assert "namespace: build" not in back
    assert back == set_tag(SOURCE, APP, "test", PIN)


def test_setting_the_same_source_again_changes_nothing():
    """An edit that is already in place returns the text unchanged."""
    once = set_tag(SOURCE, APP, "stage", PIN)
    assert set_tag(once, APP, "stage", PIN) == once


def test_deleting_a_tag_removes_it_with_its_leading_comment():
    """-d removes the tag and the comment right above it; the other lines stay byte-identical."""
    out = delete_tag(SOURCE, APP, "test")
    assert out == SOURCE.replace(
        "  # test follows the registry\n"
        "  - name: test\n"
        "    from:\n"
        "      kind: DockerImage\n"
        '      name: "registry.example.com/shop/app:test"   # quoted on purpose\n'
        "    importPolicy:\n"
        "      scheduled: true\n",
        "",
    )


def test_deleting_the_last_listed_tag_keeps_the_trailing_comment():
    """The comment after the list is not part of the last tag."""
    out = delete_tag(SOURCE, APP, "prod")
    assert out.endswith("      scheduled: true\n  # trailing comment about the list\n")
    assert "prod" not in out


def test_deleting_the_only_tag_leaves_an_empty_list():
    """A stream whose only tag is deleted keeps an empty tags list."""
    text = delete_tag(SOURCE, APP, "prod")
    out = delete_tag(text, APP, "test")
    assert load(out)["spec"]["tags"] == []  # type: ignore[index]
    assert out.startswith("# The shop's app.\n")


def test_deleting_a_missing_tag_is_an_error():
    """-d of a tag that is not in the spec names the tag, however many tags there are."""
    with pytest.raises(InputError, match="shop/app:nope is not a tag"):
        delete_tag(SOURCE, APP, "nope")
    with pytest.raises(InputError, match="shop/app:nope is not a tag"):
        delete_tag(delete_tag(SOURCE, APP, "prod"), APP, "nope")


def test_image_lookup_is_set_in_place():
    """set image-lookup flips lookupPolicy.local and nothing else."""
    out = set_lookup_policy(SOURCE, APP, True)
    assert out == SOURCE.replace("    local: false\n", "    local: true\n")


def test_image_lookup_is_added_before_the_tags():
    """A stream without lookupPolicy gets one at the top of its spec."""
    text = SOURCE.replace("  lookupPolicy:\n    local: false\n", "")
    out = set_lookup_policy(text, APP, True)
    assert out == SOURCE.replace("    local: false\n", "    local: true\n")


MULTI = """\
# two streams
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata: {name: api}
spec:
    tags:
        -   name: a
            from: { kind: DockerImage,  name: x/y:1 }
---
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app
spec:
  lookupPolicy: {local: false}
  tags:
    - name:   latest      # odd spacing ruamel would normalise
      from:
        kind: DockerImage
        name: quay.io/app:latest
      importPolicy: {scheduled: true}
    - name: 'prod'
      from: {kind:   ImageStreamImage, name: app@sha256:bbbb}
...
---
kind: ImageStream
apiVersion: v1
metadata: {name: web}
"""


def test_multi_document_files_change_only_the_streams_document():
    """In a multi-document file the other documents stay byte-identical."""
    out = set_tag(MULTI, APP, "prod", PIN)
    assert out == MULTI.replace(
        "from: {kind:   ImageStreamImage, name: app@sha256:bbbb}",
        f"from: {{kind: ImageStreamImage, name: app@{DIGEST}}}",
    )


def test_a_new_tag_in_an_indented_list_uses_the_same_columns():
    """Indented sequences ('    - name') get the new tag at the same columns."""
    out = set_tag(MULTI, APP, "stage", ALIAS)
    assert out == MULTI.replace(
        "...\n",
        "    - name: stage\n"
        "      from:\n"
        "        kind: ImageStreamTag\n"
        "        name: app:test\n"
        "...\n",
    )


def test_a_document_with_four_space_indentation_is_edited_in_its_style():
    """The first document's four-space style is kept when a tag is added to it."""
    api = StreamLocation("streams/shop/all.yaml", "shop", "api", "shop")
    out = set_tag(MULTI, api, "b", ALIAS)
    assert out == MULTI.replace(
        "            from: { kind: DockerImage,  name: x/y:1 }\n",
        "            from: { kind: DockerImage,  name: x/y:1 }\n"
        "        -   name: b\n"
        "            from: {kind: ImageStreamTag, name: app:test}\n",
    )


def test_a_directive_above_a_document_marker_belongs_to_that_document():
    """%YAML 1.2 before '---' is part of the next document, which is edited in place."""
    text = "%YAML 1.2\n---\n" + SOURCE + "...\n%YAML 1.2\n# web\n---\n" + BARE.replace("app", "web")
    out = set_lookup_policy(text, APP, True)
    assert out == text.replace("    local: false\n", "    local: true\n")


LIST = """\
apiVersion: v1
kind: List
items:
- apiVersion: image.openshift.io/v1
  kind: ImageStream
  metadata:
    name: api
    namespace: shop
  spec:
    tags:
    - name: test
      from:
        kind: DockerImage
        name: quay.io/api:test
- apiVersion: image.openshift.io/v1
  kind: ImageStream
  metadata:
    name: app
    namespace: shop
  spec:
    tags:
    - name: test
      from:
        kind: DockerImage
        name: quay.io/app:test  # the app
"""


def test_list_files_change_only_the_right_item():
    """In a List only the stream's own item changes, even where tag names repeat."""
    out = set_tag(LIST, APP, "test", PIN)
    assert out == LIST.replace(
        "        kind: DockerImage\n        name: quay.io/app:test  # the app",
        f"        kind: ImageStreamImage\n        name: app@{DIGEST} # the app",
    )


def test_a_tag_added_to_a_list_item_lands_in_that_item():
    """A new tag of the last List item goes to the end of that item's tags."""
    out = set_tag(LIST, APP, "prod", PIN)
    assert out == LIST + (
        "    - name: prod\n"
        "      from:\n"
        "        kind: ImageStreamImage\n"
        f"        name: app@{DIGEST}\n"
    )


def test_a_tag_deleted_from_one_list_item_leaves_the_other_item_alone():
    """Deleting app's only tag keeps api's tag of the same name, byte for byte."""
    out = delete_tag(LIST, APP, "test")
    assert out == LIST.replace(
        "    tags:\n"
        "    - name: test\n"
        "      from:\n"
        "        kind: DockerImage\n"
        "        name: quay.io/app:test  # the app\n",
        "    tags: []\n",
    )


def test_json_files_are_edited_as_json():
    """A .json stream file stays JSON with its key order and indentation."""
    text = json.dumps(
        {
            "kind": "ImageStream",
            "apiVersion": "image.openshift.io/v1",
            "metadata": {"name": "app"},
            "spec": {"tags": [{"name": "test", "from": {"kind": "DockerImage", "name": "x:1"}}]},
        },
        indent=4,
    )
    where = StreamLocation("streams/shop/app.json", "shop", "app", "shop")
    out = set_tag(text + "\n", where, "prod", PIN, scheduled=None)
    data = json.loads(out)
    assert list(data) == ["kind", "apiVersion", "metadata", "spec"]
    assert data["spec"]["tags"][1] == {
        "name": "prod",
        "from": {"kind": "ImageStreamImage", "name": f"app@{DIGEST}"},
    }
    assert out.startswith('{\n    "kind": "ImageStream",\n') and out.endswith("}\n")


def test_new_stream_files_are_image_streams_with_the_tag():
    """A new file holds an image.openshift.io/v1 ImageStream the loader accepts."""
    where = StreamLocation(stream_file_path("shop", "web"), "shop", "web", "shop")
    out = set_tag(new_stream_text("shop", "web"), where, "prod", PIN)
    assert out == (
        "apiVersion: image.openshift.io/v1\n"
        "kind: ImageStream\n"
        "metadata:\n"
        "  name: web\n"
        "  namespace: shop\n"
        "spec:\n"
        "  lookupPolicy:\n"
        "    local: false\n"
        "  tags:\n"
        "  - name: prod\n"
        "    from:\n"
        "      kind: ImageStreamImage\n"
        f"      name: app@{DIGEST}\n"
    )
    streams = parse_streams({where.path: out.encode()}, Config()).streams
    assert streams[0].tag("prod") is not None


def test_names_that_look_like_other_types_are_quoted():
    """A stream named 'true' and a tag named '1.0' stay strings."""
    where = StreamLocation(stream_file_path("shop", "true"), "shop", "true", "shop")
    out = set_tag(new_stream_text("shop", "true"), where, "1.0", PIN)
    data = load(out)
    assert data["metadata"]["name"] == "true"  # type: ignore[index]
    assert data["spec"]["tags"][0]["name"] == "1.0"  # type: ignore[index]


def test_a_file_without_the_stream_is_an_error():
    """Editing a stream the file does not define names the file."""
    where = StreamLocation("streams/shop/app.yaml", "shop", "other", "shop")
    with pytest.raises(InputError, match="does not define image stream shop/other"):
        set_tag(SOURCE, where, "prod", PIN)


def test_a_stream_defined_twice_in_a_file_is_an_error():
    """Two documents defining the same stream make the edit ambiguous."""
    with pytest.raises(InputError, match="2 times"):
        set_tag(SOURCE + "---\n" + SOURCE, APP, "prod", PIN)


def test_objects_without_a_namespace_take_the_implied_one():
    """A document without metadata.namespace matches only in the implied namespace."""
    elsewhere = StreamLocation("streams/shop/app.yaml", "other", "app", "shop")
    with pytest.raises(InputError, match="does not define"):
        set_tag(SOURCE, elsewhere, "prod", PIN)


def test_implied_namespace_is_the_folder_else_the_default():
    """streams/<ns>/… implies <ns>; a file directly under streams/ takes the default."""
    assert implied_namespace("streams/shop/app.yaml", "default") == "shop"
    assert implied_namespace("streams/app.yaml", "default") == "default"


def test_crlf_line_endings_and_a_missing_final_newline_are_kept():
    """Windows line endings and an unterminated last line survive an edit."""
    text = SOURCE.rstrip("\n").replace("\n", "\r\n")
    out = set_tag(text, APP, "test", PIN)
    assert out == set_tag(SOURCE, APP, "test", PIN).rstrip("\n").replace("\n", "\r\n")


def test_an_edit_inside_lines_ruamel_rearranges_still_says_the_right_thing():
    """When the edited lines cannot be spliced, the re-emitted document is still correct."""
    text = SOURCE.replace(
        "    from: {kind: ImageStreamImage, name: 'app@sha256:aaaa'}\n",
        "    from: {kind: ImageStreamImage,\n           name: 'app@sha256:aaaa'}\n",
    )
    out = set_tag(text, APP, "prod", ALIAS)
    data = load(out)
    assert data["spec"]["tags"][1]["from"] == {"kind": "ImageStreamTag", "name": "app:test"}  # type: ignore[index]
    assert data["spec"]["tags"][1]["annotations"] == {"note": "keep me"}  # type: ignore[index]
    assert "# test follows the registry" in out


# --- less common shapes --------------------------------------------------------------------------

BARE = "apiVersion: v1\nkind: ImageStream\nmetadata:\n  name: app\n"


def test_a_stream_without_spec_gets_one_after_its_metadata():
    """A stream with no spec gains spec.tags with the new tag, below metadata."""
    out = set_tag(BARE + "status: {}\n", APP, "prod", ALIAS)
    assert out == BARE + (
        "spec:\n  tags:\n  - name: prod\n    from:\n      kind: ImageStreamTag\n"
        "      name: app:test\nstatus: {}\n"
    )


def test_an_empty_spec_is_filled_in_place():
    """spec: written empty becomes a mapping with the new tag."""
    out = set_tag(BARE + "spec:\n", APP, "a", ALIAS)
    assert load(out)["spec"] == {  # type: ignore[index]
        "tags": [{"name": "a", "from": {"kind": "ImageStreamTag", "name": "app:test"}}]
    }


def test_a_splice_that_would_change_the_meaning_falls_back_to_ruamel():
    """Mixed indentation ruamel re-indents is never half-spliced into invalid YAML."""
    text = (
        "kind: ImageStream\napiVersion: v1\nmetadata:\n    name: app\nspec:\n  tags:\n"
        "  - name: a\n    from:\n      kind: DockerImage\n      name: x\n"
    )
    out = set_tag(text, APP, "a", ALIAS, scheduled=False)
    assert load(out)["spec"]["tags"] == [  # type: ignore[index]
        {"name": "a", "from": {"kind": "ImageStreamTag", "name": "app:test"}}
    ]


def test_null_values_are_replaced_by_mappings():
    """lookupPolicy:, importPolicy: and from: written empty are filled in place."""
    text = BARE + "spec:\n  lookupPolicy:\n  tags:\n  - name: a\n    from:\n    importPolicy:\n"
    out = set_lookup_policy(set_tag(text, APP, "a", DOCKER, scheduled=True), APP, True)
    assert load(out)["spec"] == {  # type: ignore[index]
        "lookupPolicy": {"local": True},
        "tags": [
            {
                "name": "a",
                "from": {"kind": "DockerImage", "name": "quay.io/shop/app:1.4"},
                "importPolicy": {"scheduled": True},
            }
        ],
    }


def test_a_tag_without_from_gets_it_after_its_name():
    """A tag missing from (invalid, but editable) gets from right after name."""
    text = BARE + "spec:\n  tags:\n  - name: a\n    annotations: {x: y}\n"
    out = set_tag(text, APP, "a", ALIAS)
    assert out == BARE + (
        "spec:\n  tags:\n  - name: a\n    from:\n      kind: ImageStreamTag\n"
        "      name: app:test\n    annotations: {x: y}\n"
    )


def test_scheduled_false_never_adds_an_import_policy():
    """scheduled=False on a tag without importPolicy writes nothing; with one, sets false."""
    assert set_tag(SOURCE, APP, "prod", DOCKER, scheduled=False) == set_tag(
        SOURCE, APP, "prod", DOCKER
    )
    assert "      scheduled: false\n" in set_tag(SOURCE, APP, "test", DOCKER, scheduled=False)


def test_flow_style_tag_lists_are_edited_through_ruamel():
    """tags: [{…}, {…}] is edited as a flow list, and deleting one tag keeps the other."""
    text = BARE + "spec:\n  tags: [{name: a, from: {kind: DockerImage, name: x}}, {name: b}]\n"
    added = set_tag(text, APP, "c", ALIAS)
    assert load(added)["spec"]["tags"][2]["name"] == "c"  # type: ignore[index]
    assert load(delete_tag(text, APP, "a"))["spec"]["tags"] == [{"name": "b"}]  # type: ignore[index]


def test_a_dash_on_its_own_line_is_left_to_ruamel():
    """List items written as '-' then the mapping below still get edited correctly."""
    text = BARE + "spec:\n  tags:\n  -\n    name: a\n    from: {kind: DockerImage, name: x}\n"
    text += "  -\n    name: b\n    from: {kind: DockerImage, name: y}\n"
    assert [t["name"] for t in load(set_tag(text, APP, "c", ALIAS))["spec"]["tags"]] == [  # type: ignore[index]
        "a",
        "b",
        "c",
    ]
    assert [t["name"] for t in load(delete_tag(text, APP, "a"))["spec"]["tags"]] == ["b"]  # type: ignore[index]


def test_blank_lines_inside_a_tag_belong_to_it():
    """A blank line within a tag does not end it: deleting the tag removes all its lines."""
    text = BARE + (
        "spec:\n  tags:\n  - name: a\n\n    from: {kind: DockerImage, name: x}\n"
        "    # about a\n  - name: b\n    from: {kind: DockerImage, name: y}\n"
    )
    assert delete_tag(text, APP, "a") == BARE + (
        "spec:\n  tags:\n  - name: b\n    from: {kind: DockerImage, name: y}\n"
    )


def test_a_comment_after_a_blank_line_is_not_taken_with_the_tag_above():
    """Only comments directly below a tag's last line belong to it."""
    text = BARE + (
        "spec:\n  tags:\n  - name: a\n    from: {kind: DockerImage, name: x}\n\n"
        "    # about what follows\n  - name: b\n    from: {kind: DockerImage, name: y}\n"
    )
    assert delete_tag(text, APP, "a") == BARE + (
        "spec:\n  tags:\n\n    # about what follows\n  - name: b\n"
        "    from: {kind: DockerImage, name: y}\n"
    )


def test_duplicate_tags_are_refused():
    """A tag name written twice makes the edit ambiguous."""
    text = SOURCE + "  - name: prod\n    from: {kind: DockerImage, name: x}\n"
    with pytest.raises(InputError, match="defined 2 times"):
        set_tag(text, APP, "prod", PIN)


def test_documents_that_are_not_image_streams_are_skipped():
    """A leading '---', a list document and a ConfigMap do not confuse the search."""
    text = "\n---\n- a\n- b\n---\nkind: ConfigMap\nmetadata: {name: app}\n---\n" + SOURCE
    out = set_lookup_policy(text, APP, True)
    assert out == text.replace("    local: false\n", "    local: true\n")


def test_a_syntax_error_is_an_input_error():
    """Broken YAML or JSON is reported with the path."""
    with pytest.raises(InputError, match=r"streams/shop/app\.yaml: not valid YAML"):
        set_tag("kind: [\n", APP, "a", PIN)
    json_file = StreamLocation("streams/shop/app.json", "shop", "app", "shop")
    with pytest.raises(InputError, match="not valid JSON"):
        set_tag("{", json_file, "a", PIN)


def test_json_files_without_the_stream_are_an_error():
    """A JSON file defining another stream is not edited."""
    json_file = StreamLocation("streams/shop/app.json", "shop", "app", "shop")
    with pytest.raises(InputError, match="does not define"):
        set_tag('{"kind": "ImageStream", "metadata": {"name": "web"}}', json_file, "a", PIN)


def test_json_indentation_is_detected():
    """Tab-indented and single-line JSON keep their layout; keys added keep their place."""
    json_file = StreamLocation("streams/shop/app.json", "shop", "app", "shop")
    tabbed = '{\n\t"kind": "ImageStream",\n\t"metadata": {"name": "app"}\n}\n'
    assert set_lookup_policy(tabbed, json_file, True).startswith('{\n\t"kind"')
    flush = '{\n"kind": "ImageStream",\n"metadata": {"name": "app"}\n}\n'
    assert set_lookup_policy(flush, json_file, True).startswith('{\n"kind": "ImageStream",\n')
    flat = '{"kind": "ImageStream", "metadata": {"name": "app"}, "status": {}}'
    assert set_lookup_policy(flat, json_file, True) == (
        '{"kind": "ImageStream", "metadata": {"name": "app"}, '
        '"spec": {"lookupPolicy": {"local": true}}, "status": {}}'
    )


def test_splice_places_insertions_next_to_the_lines_they_follow():
    """Insertions at the start, after a kept line or before one land in the person's text."""
    original = ["a:  1\n", "b: 2\n", "c: 3\n"]
    normalised = ["a: 1\n", "b: 2\n", "c: 3\n"]
    assert _splice(original, normalised, ["x: 0\n", *normalised]) == ["x: 0\n", *original]
    assert _splice(original, normalised, ["a: 1\n", "b: 2\n", "y: 9\n", "c: 3\n"]) == [
        "a:  1\n",
        "b: 2\n",
        "y: 9\n",
        "c: 3\n",
    ]


def test_splice_gives_up_where_ruamel_rearranged_lines():
    """An edit inside lines ruamel merged returns the re-emitted document."""
    original = ["a: [1,\n", "  2]\n", "b: 3\n"]
    normalised = ["a: [1, 2]\n", "b: 3\n"]
    edited = ["a: [1, 5]\n", "b: 3\n"]
    assert _splice(original, normalised, edited) == edited
    assert _splice(original, normalised, ["a: [1, 2]\n", "b: 3\n", "c: 4\n"]) == [
        *original,
        "c: 4\n",
    ]


def test_same_data_is_false_for_broken_text():
    """The splice safety net treats unreadable text as different."""
    assert not _same_data(["a: [\n"], ["a: 1\n"])


def test_a_splice_that_changes_the_data_is_replaced_by_the_edited_document():
    """When lines paired one for one are not the same lines, ruamel's output wins."""
    original = ["a: 1\n", "b: 2\n"]
    normalised = ["b: 2\n", "a: 1\n"]
    edited = ["b: 3\n", "a: 1\n"]
    assert _merge(original, normalised, edited) == edited
    renamed = ["c: 1\n", "d: 2\n"]
    assert _merge(original, renamed, ["c: 1\n", "d: 5\n"]) == ["c: 1\n", "d: 5\n"]


def test_splice_gives_up_on_lines_ruamel_dropped_or_cannot_place():
    """Gaps, unplaceable insertions and impossible shifts return the edited document."""
    gap = ["a: 1\n", "# c\n", "b: 2\n"]
    assert _splice(gap, ["a: 1\n", "b: 2\n"], ["a: 5\n", "b: 6\n"]) == ["a: 5\n", "b: 6\n"]
    merged = ["a: [1,\n", "  2]\n"]
    assert _splice(merged, ["a: [1, 2]\n"], ["a: [1, 2]\n", "b: 1\n"]) == ["a: [1, 2]\n", "b: 1\n"]
    assert _splice(["x: 1\n"], ["    x: 1\n"], ["  y: 1\n"]) == ["  y: 1\n"]


def test_a_document_without_lists_still_gets_its_indentation():
    """Indentation is guessed from mappings alone when a document has no lists."""
    text = BARE.replace("  name", "    name") + "spec:\n    lookupPolicy:\n        local: false\n"
    assert set_lookup_policy(text, APP, True) == text.replace("false", "true")


SHARED = """\
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata: {name: app}
spec:
  tags:
  - &base
    name: a
    from: &src {kind: DockerImage, name: quay.io/a:1}
    importPolicy: &scheduled {scheduled: true}
  - <<: *base
    name: b
  - name: c
    from: *src
    importPolicy: *scheduled
"""


def tags_of(text: str) -> dict[str, object]:
    """The tags as a loader sees them (aliases and merges resolved), by name."""
    return {t["name"]: t for t in load(text)["spec"]["tags"]}  # type: ignore[index]


@pytest.mark.parametrize("tag", ["a", "b", "c"])
def test_a_tag_sharing_from_through_yaml_anchors_changes_alone(tag: str):
    """Aliases (*src) and merges (<<: *base) share a from; re-tagging one tag leaves the others."""
    expected = tags_of(SHARED)
    expected[tag]["from"] = PIN.to_dict()  # type: ignore[index]
    assert tags_of(set_tag(SHARED, APP, tag, PIN)) == expected


def test_an_aliased_import_policy_changes_for_one_tag_only():
    """scheduled=False on c, whose importPolicy is *scheduled, leaves a and b scheduled."""
    expected = tags_of(SHARED)
    expected["c"] = {
        **expected["c"],  # type: ignore[dict-item]
        "from": DOCKER.to_dict(),
        "importPolicy": {"scheduled": False},
    }
    assert tags_of(set_tag(SHARED, APP, "c", DOCKER, scheduled=False)) == expected


@pytest.mark.parametrize("tag", ["a", "c"])
def test_deleting_a_tag_that_holds_or_uses_an_anchor_keeps_the_others(tag: str):
    """Deleting the tag defining &base and &src moves the anchors; the others keep their data."""
    expected = tags_of(SHARED)
    del expected[tag]
    assert tags_of(delete_tag(SHARED, APP, tag)) == expected


# --- property ------------------------------------------------------------------------------------

_SOURCES = st.sampled_from([PIN, ALIAS, DOCKER, TagReference("ImageStreamTag", "a:b", "build")])
_TAGS = st.sampled_from(["test", "prod", "stage", "1.0", "x_y"])
_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "delete"]), _TAGS, _SOURCES, st.sampled_from([None, True])),
    max_size=6,
)


def _model(data: dict, op: str, tag: str, source: TagReference, scheduled: bool | None) -> None:
    tags = data["spec"]["tags"]
    found = [item for item in tags if item["name"] == tag]
    if op == "delete":
        tags.remove(found[0])
        return
    item = found[0] if found else {"name": tag}
    if not found:
        tags.append(item)
    item["from"] = source.to_dict()
    if scheduled:
        item.setdefault("importPolicy", {})["scheduled"] = True


@settings(max_examples=40, deadline=None)
@given(_OPS)
def test_any_sequence_of_edits_says_what_the_model_says(ops: list) -> None:
    """Edits in any order leave exactly the data a plain model of the spec predicts."""
    text, expected = SOURCE, load(SOURCE)
    for op, tag, source, scheduled in ops:
        present = any(item["name"] == tag for item in expected["spec"]["tags"])  # type: ignore[index]
        if op == "delete" and not present:
            continue
        if op == "delete":
            text = delete_tag(text, APP, tag)
        else:
            text = set_tag(text, APP, tag, source, scheduled=scheduled)
        _model(expected, op, tag, source, scheduled)  # type: ignore[arg-type]
        assert load(text) == expected
    assert text.startswith("# The shop's app.\n")
