"""Safe YAML/JSON loading, schema messages and locations, and where the schemas come from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from jsonschema.validators import Draft202012Validator

from reconciler import schema
from reconciler.config import DURATION_PATTERN
from reconciler.errors import ValidationError

REPO = Path(__file__).parents[2]
SCHEMAS = (schema.IMAGESTREAM_SCHEMA, schema.CONFIG_SCHEMA, schema.LOCK_SCHEMA)


def refused(text: str | bytes, path: str = "f.yaml") -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(ValidationError) as caught:
        schema.parse_documents(data, path)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("name", SCHEMAS)
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    """Each shipped schema passes the 2020-12 metaschema (editors can use them)."""
    Draft202012Validator.check_schema(schema.load_schema(name))


def test_shared_definitions_are_identical() -> None:
    """Name rules repeated across the self-contained schemas do not drift apart."""
    defs = {name: schema.load_schema(name)["$defs"] for name in SCHEMAS}
    for key in ("namespaceName", "streamName", "tagName", "platform"):
        copies = [d[key] for d in defs.values() if key in d]
        assert len(copies) >= 2 and all(c == copies[0] for c in copies), key


def test_duration_pattern_matches_the_code() -> None:
    """The schema's duration pattern is the one config.py parses."""
    assert schema.load_schema(schema.CONFIG_SCHEMA)["$defs"]["duration"]["pattern"] == (
        DURATION_PATTERN
    )


def test_source_checkout_reads_the_repository_schemas() -> None:
    """From a source or editable checkout the schemas come from the top-level schemas/."""
    assert Path(str(schema.schema_dir())).resolve() == REPO / "schemas"


def test_wheel_ships_and_loads_the_schemas(tmp_path: Path) -> None:
    """The built wheel holds reconciler/schemas/ and loads them with importlib.resources."""
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    probe = (
        "from reconciler import schema; "
        "print(schema.schema_dir()); print(schema.load_schema('lock.schema.json')['title'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    assert out == [str(tmp_path / "site" / "reconciler" / "schemas"), "streamlock lock file"]


def test_format_path_reads_like_the_document() -> None:
    """Paths print as written in YAML; keys that are not identifiers are quoted."""
    assert schema.format_path(("spec", "tags", 1, "from", "kind")) == "spec.tags[1].from.kind"
    assert schema.format_path(("metadata", "annotations", "streamlock.dev/hold")) == (
        'metadata.annotations["streamlock.dev/hold"]'
    )


def test_positions_of_values_and_keys_are_recorded() -> None:
    """Values and keys map to 1-based line and column, per document of a stream."""
    first, second = schema.parse_documents(b"a: 1\n---\n# note\nb:\n  - x: [1, 2]\n", "f.yaml")
    assert first.data == {"a": 1} and second.data == {"b": [{"x": [1, 2]}]}
    assert second.position(("b", 0, "x", 1)) == (5, 12)
    assert second.position(("b", 0, "x"), key=True) == (5, 5)
    assert second.position(()) == (4, 1)


def test_yaml_1_2_flow_scalars_with_colons_load() -> None:
    """``{name: quay.io/app:1.0}`` is YAML 1.2 (libyaml refuses it); it loads with positions."""
    (doc,) = schema.parse_documents(b"from: {kind: DockerImage, name: quay.io/app:1.0}\n", "f.yaml")
    assert doc.data == {"from": {"kind": "DockerImage", "name": "quay.io/app:1.0"}}
    assert doc.position(("from", "name")) == (1, 33)


def test_scalars_resolve_by_yaml_1_2() -> None:
    """``yes``/``on`` stay strings, ``010`` is ten, timestamps stay as written."""
    (doc,) = schema.parse_documents(b"a: yes\nb: on\nc: 010\nd: 2024-01-01T10:00:00Z\n", "f.yaml")
    assert doc.data == {"a": "yes", "b": "on", "c": 10, "d": "2024-01-01T10:00:00Z"}


def test_merge_keys_merge_and_own_keys_win() -> None:
    """``<<: *base`` merges a mapping; keys written in the mapping itself take precedence."""
    text = b"base: &b {scheduled: true, importMode: Legacy}\nt:\n  <<: *b\n  importMode: X\n"
    (doc,) = schema.parse_documents(text, "f.yaml")
    assert doc.data["t"] == {"importMode": "X", "scheduled": True}


def test_merge_of_a_scalar_is_refused() -> None:
    """``<<`` takes mappings only."""
    assert refused("t:\n  <<: 3\n") == ["f.yaml:2:7: t: << merges a mapping or a list of mappings"]


def test_syntax_error_is_located() -> None:
    """A YAML syntax error is reported where the parser found it."""
    assert refused("a: 1\nb: c: d\ne: 2\n") == [
        "f.yaml:2:5: not valid YAML: an unquoted ': ' inside a value: quote the value "
        "(name: 'a: b') (line 2: 'b: c: d')"
    ]


def test_duplicate_key_is_refused_at_the_duplicate() -> None:
    """A key given twice is an error (the last one silently winning hides typos)."""
    assert refused("metadata:\n  name: a\n  name: b\n") == [
        "f.yaml:3:3: metadata: duplicate key 'name' (first on line 2)"
    ]


def test_alias_bomb_is_refused_before_anything_is_built() -> None:
    """A "billion laughs" document is refused by counting what its aliases expand to."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    (problem,) = refused("\n".join(lines) + "\n")
    assert problem.startswith("f.yaml:5:")
    assert problem.endswith(f"document expands to more than {schema.MAX_VALUES} values")


def test_too_many_aliases_are_refused() -> None:
    """More aliases than the limit are refused even when each is small."""
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (schema.MAX_ALIASES + 1)) + "]\n"
    assert refused(text)[0].endswith(f"more than {schema.MAX_ALIASES} YAML aliases")


def test_a_few_aliases_are_expanded() -> None:
    """Anchors for shared settings work as YAML users expect."""
    (doc,) = schema.parse_documents(b"base: &p {scheduled: true}\nt: *p\n", "f.yaml")
    assert doc.data == {"base": {"scheduled": True}, "t": {"scheduled": True}}


def test_recursive_alias_is_refused() -> None:
    """A node that contains itself cannot be checked or expanded."""
    assert refused("a: &a [1, *a]\n") == ["f.yaml:1:11: recursive YAML alias *a"]


def test_unknown_tags_are_refused() -> None:
    """Only plain data: language-specific and custom tags are refused."""
    assert refused("a: !!python/object:os.system {}\n") == [
        "f.yaml:1:4: YAML tag tag:yaml.org,2002:python/object:os.system is not supported"
    ]


def test_deep_nesting_is_refused() -> None:
    """Nesting beyond the limit is refused before the recursive builder runs."""
    depth = schema.MAX_DEPTH + 1
    (problem,) = refused("a: " + "[" * depth + "]" * depth + "\n")
    assert problem.endswith(f"nested deeper than {schema.MAX_DEPTH} levels")


def test_large_files_are_refused() -> None:
    """Files over the size limit are not parsed at all."""
    data = b"# " + b"x" * schema.MAX_FILE_BYTES + b"\n"
    assert refused(data) == [f"f.yaml:1:1: larger than {schema.MAX_FILE_BYTES} bytes"]


def test_invalid_utf8_is_located() -> None:
    """A byte that is not UTF-8 is reported at its line and column."""
    assert refused(b"a: 1\nb: caf\xe9\n") == ["f.yaml:2:7: not valid UTF-8"]


def test_json_files_need_strict_json() -> None:
    """``*.json`` is checked as JSON (a trailing comma is an error YAML would allow)."""
    assert refused('{\n  "a": 1,\n}\n', "f.json") == [
        "f.json:3:1: not valid JSON: Expecting property name enclosed in double quotes"
    ]


def test_non_string_keys_are_refused() -> None:
    """Keys must be strings; an unquoted number key is located."""
    assert refused("labels:\n  1.10: x\n") == [
        "f.yaml:2:3: labels: key 1.10 is not a string; quote it"
    ]


def test_schema_errors_are_collected_and_sorted() -> None:
    """All schema errors of a document are reported, in file order, each at its own spot."""
    text = b"platform: Linux\nhistoryLimit: many\ngit: {push: sideways}\n"
    (doc,) = schema.parse_documents(text, "streamlock.yaml")
    assert [str(p) for _, p in schema.check(doc, schema.CONFIG_SCHEMA)] == [
        "streamlock.yaml:1:11: platform: 'Linux' is not a valid platform "
        "(os/architecture[/variant], such as linux/amd64 or linux/arm64/v8)",
        "streamlock.yaml:2:15: historyLimit: expected an integer, got 'many'",
        "streamlock.yaml:3:13: git.push: 'sideways' is not one of direct, branch",
    ]


def test_property_name_errors_point_at_the_key() -> None:
    """A bad mapping key (a lock's tag name) is reported at the key itself."""
    lock = {
        "apiVersion": "streamlock/v1",
        "kind": "ImageStreamLock",
        "metadata": {"name": "app", "namespace": "shop"},
        "tags": {"bad tag": None},
    }
    text = json.dumps(lock, indent=1).encode()
    (doc,) = schema.parse_documents(text, "app.lock.json")
    messages = [str(p) for _, p in schema.check(doc, schema.LOCK_SCHEMA)]
    assert messages[0].startswith(
        "app.lock.json:9:3: tags[\"bad tag\"]: key 'bad tag' is not a valid tag name"
    )


def test_repo_files_skips_hidden_entries_and_survives_link_loops(tmp_path: Path) -> None:
    """Hidden files are skipped and a directory link back up is visited once."""
    (tmp_path / "streams/shop").mkdir(parents=True)
    for name in ("a.yaml", ".b.yaml", "c.txt", "d.json"):
        (tmp_path / "streams/shop" / name).write_text("{}")
    os.symlink(tmp_path / "streams", tmp_path / "streams/shop/loop")
    files, problems = schema.repo_files(tmp_path, "streams", (".yaml", ".json"))
    assert (files, problems) == (["streams/shop/a.yaml", "streams/shop/d.json"], [])


def test_read_repo_file_refuses_links_out_of_the_repo(tmp_path: Path) -> None:
    """A file that resolves outside the repository is not read."""
    (tmp_path / "secret").write_text("token")
    (tmp_path / "repo").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "repo" / "x.yaml")
    with pytest.raises(ValidationError, match=r"x\.yaml:1:1: symlink points outside the repo"):
        schema.read_repo_file(tmp_path / "repo", "x.yaml")


def test_a_symlink_loop_is_reported_not_raised(tmp_path: Path) -> None:
    """Links that point at each other are listed, and reading one is a located problem."""
    (tmp_path / "streams/shop").mkdir(parents=True)
    os.symlink("b.yaml", tmp_path / "streams/shop/a.yaml")
    os.symlink("a.yaml", tmp_path / "streams/shop/b.yaml")
    files, problems = schema.repo_files(tmp_path, "streams", (".yaml",))
    assert (files, problems) == (["streams/shop/a.yaml", "streams/shop/b.yaml"], [])
    with pytest.raises(ValidationError, match=r"a\.yaml:1:1: not a regular file"):
        schema.read_repo_file(tmp_path, "streams/shop/a.yaml")


def test_read_repo_file_refuses_a_path_that_climbs_out(tmp_path: Path) -> None:
    """A relative path through ``..`` that leaves the repository is not read."""
    (tmp_path / "secret.yaml").write_text("token")
    (tmp_path / "repo/streams").mkdir(parents=True)
    with pytest.raises(ValidationError, match="symlink points outside the repo"):
        schema.read_repo_file(tmp_path / "repo", "streams/../../secret.yaml")
