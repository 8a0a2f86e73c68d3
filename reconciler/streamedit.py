"""Edits of stream files as people wrote them: file text in, file text out.

The CLI's writing commands (``tag``, ``rollback --pin``, ``set image-lookup``) change human YAML
that then goes through review, so a diff must show the change and nothing else. Three layers
keep it that way:

- only the document (or ``List`` item) that defines the stream is parsed and re-emitted; the other
  documents of the file are never touched;
- edits are made on ruamel.yaml's round-trip tree (comments, key order and quoting survive), and
  the changed lines are spliced into the original text, so lines ruamel would merely re-format
  stay byte-identical;
- adding or deleting a whole tag in a block list is done on the text itself, so the comment above
  a tag goes with it and the comments around it stay where they were;
- what YAML anchors share (``from: *src``, ``<<: *base``) is copied before it is changed, so an
  edit of one tag never changes another.

JSON files are edited as JSON (key order and indentation kept). Pure: no file I/O.
"""

from __future__ import annotations

import difflib
import io
import json
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import ScalarString

from reconciler.errors import InputError
from reconciler.imagestream import LIST_KINDS, STREAMS_DIR, TagReference, folder_namespace

API_VERSION = "image.openshift.io/v1"
KIND = "ImageStream"

_MARKER_RE = re.compile(r"^---(?:[ \t]|$)")
_COMMENT_RE = re.compile(r"\s+#.*$")
_BRACKET_SPACE_RE = re.compile(r"[\[{] | [\]}]")


@dataclass(frozen=True, slots=True)
class StreamLocation:
    """Which stream to edit in a file, and the namespace its objects get when they name none."""

    path: str  # repository-relative, for messages and to tell JSON from YAML
    namespace: str
    name: str
    implied_namespace: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def implied_namespace(path: str, default_namespace: str) -> str:
    """The namespace of a stream file's objects without ``metadata.namespace``: its folder under
    ``streams/``, else the config default (the loader's rule)."""
    return folder_namespace(path) or default_namespace


def stream_file_path(namespace: str, name: str) -> str:
    """Where a new stream is written."""
    return f"{STREAMS_DIR}/{namespace}/{name}.yaml"


def new_stream_text(namespace: str, name: str) -> str:
    """A new file holding one empty ``image.openshift.io/v1`` ImageStream."""
    doc = CommentedMap()
    doc["apiVersion"] = API_VERSION
    doc["kind"] = KIND
    doc["metadata"] = CommentedMap([("name", name), ("namespace", namespace)])
    tags = CommentedSeq()
    tags.fa.set_flow_style()
    doc["spec"] = CommentedMap([("lookupPolicy", CommentedMap([("local", False)])), ("tags", tags)])
    return _dump(_yaml(2, 2, 0), doc)


# --- public edits --------------------------------------------------------------------------------


def set_tag(
    text: str,
    where: StreamLocation,
    tag: str,
    source: TagReference,
    *,
    scheduled: bool | None = None,
) -> str:
    """Point ``tag`` at ``source`` (creating the tag if needed); other fields of the tag are kept.

    ``scheduled`` sets ``importPolicy.scheduled`` when not None.
    """

    def tree(stream: MutableMapping[str, Any], own: Own) -> None:
        tags = _ensure_tags(stream, own)
        index = _tag_index(tags, tag, where)
        if index is None:
            tags.append(_new_tag(tags, tag, source, scheduled))
            return
        item = own(tags, index)
        _set_source(item, source, own)
        if scheduled is not None:
            _set_scheduled(item, scheduled, own)

    def text_edit(target: _Target) -> list[str] | None:
        tags = _block_tags(target)
        if tags is None or _tag_index(tags, tag, where) is not None:
            return None
        span = _item_span(target.segment, tags, len(tags) - 1)
        if span is None:
            return None
        item = _new_tag(tags, tag, source, scheduled)
        rendered = _render_item(target.yaml, item, span.dash_col, span.content_col)
        return target.segment[: span.end] + rendered + target.segment[span.end :]

    return _edit(text, where, tree, text_edit)


def delete_tag(text: str, where: StreamLocation, tag: str) -> str:
    """Remove ``tag`` from the spec, with the comment lines written right above it."""

    def tree(stream: MutableMapping[str, Any], own: Own) -> None:
        tags = _ensure_tags(stream, own)
        index = _tag_index(tags, tag, where)
        if index is None:
            raise _no_tag(where, tag)
        del tags[index]
        if not tags:
            empty = CommentedSeq()
            empty.fa.set_flow_style()
            stream["spec"]["tags"] = empty

    def text_edit(target: _Target) -> list[str] | None:
        tags = _block_tags(target)
        if tags is None or len(tags) < 2:
            return None
        index = _tag_index(tags, tag, where)
        if index is None:
            raise _no_tag(where, tag)
        if _reaches_shared(tags[index], target.shared):
            return None  # it defines an anchor others use: ruamel moves it to the next use
        span = _item_span(target.segment, tags, index)
        if span is None:
            return None
        return target.segment[: span.start] + target.segment[span.end :]

    return _edit(text, where, tree, text_edit)


def set_lookup_policy(text: str, where: StreamLocation, local: bool) -> str:
    """Set ``spec.lookupPolicy.local``."""

    def tree(stream: MutableMapping[str, Any], own: Own) -> None:
        spec = _ensure_spec(stream, own)
        policy = own(spec, "lookupPolicy")
        if not isinstance(policy, MutableMapping):
            policy = CommentedMap()
            if "lookupPolicy" in spec:
                spec["lookupPolicy"] = policy
            else:
                _insert(spec, 0, "lookupPolicy", policy)
        _assign(policy, "local", local)

    return _edit(text, where, tree, None)


def set_tag_annotation(
    text: str, where: StreamLocation, tag: str, key: str, value: str | None
) -> str:
    """Set (or with None remove) the annotation ``key`` of ``tag``; other fields are kept."""

    def tree(stream: MutableMapping[str, Any], own: Own) -> None:
        tags = _ensure_tags(stream, own)
        index = _tag_index(tags, tag, where)
        if index is None:
            raise _no_tag(where, tag)
        item = own(tags, index)
        annotations = own(item, "annotations")
        if not isinstance(annotations, MutableMapping):
            if value is None:
                return
            annotations = CommentedMap()
            if "annotations" in item:
                item["annotations"] = annotations
            else:
                _insert(item, _position_after(item, "name"), "annotations", annotations)
        if value is None:
            annotations.pop(key, None)
            if not annotations:
                del item["annotations"]
        else:
            _assign(annotations, key, value)

    return _edit(text, where, tree, None)


# --- tree helpers ---------------------------------------------------------------------------------


def _no_tag(where: StreamLocation, tag: str) -> InputError:
    return InputError(
        f"{where}:{tag} is not a tag",
        hint=f"'streamlock describe {where}' lists the tags",
    )


def _insert(mapping: MutableMapping[str, Any], position: int, key: str, value: Any) -> None:
    """Insert a new key at ``position`` (a plain dict is rebuilt to keep the order)."""
    if isinstance(mapping, CommentedMap):
        mapping.insert(position, key, value)
        return
    items = list(mapping.items())
    items.insert(position, (key, value))
    mapping.clear()
    mapping.update(items)


def _position_after(mapping: MutableMapping[str, Any], key: str) -> int:
    """The position right after ``key``, which the caller knows is present."""
    return list(mapping).index(key) + 1


def _assign(mapping: MutableMapping[str, Any], key: str, value: Any) -> None:
    """Set a value, keeping the quoting style of the string it replaces."""
    old = mapping.get(key)
    if key in mapping and old == value and (type(old) is type(value) or isinstance(old, str)):
        return
    if isinstance(value, str) and isinstance(old, ScalarString):
        value = type(old)(value)
    mapping[key] = value


def _ensure_spec(stream: MutableMapping[str, Any], own: Own) -> MutableMapping[str, Any]:
    spec = own(stream, "spec")
    if isinstance(spec, MutableMapping):
        return spec
    spec = CommentedMap()
    if "spec" in stream:
        stream["spec"] = spec
    else:
        _insert(stream, _position_after(stream, "metadata"), "spec", spec)
    return spec


def _ensure_tags(stream: MutableMapping[str, Any], own: Own) -> list[Any]:
    spec = _ensure_spec(stream, own)
    tags = own(spec, "tags")
    if isinstance(tags, list) and tags:
        return tags
    tags = CommentedSeq()
    spec["tags"] = tags
    return tags


def _tag_index(tags: list[Any], tag: str, where: StreamLocation) -> int | None:
    found = [i for i, item in enumerate(tags) if isinstance(item, dict) and item.get("name") == tag]
    if len(found) > 1:
        raise InputError(
            f"{where}:{tag} is defined {len(found)} times in {where.path}",
            hint="remove the duplicates first (streamlock validate)",
        )
    return found[0] if found else None


def _source_map(source: TagReference) -> CommentedMap:
    return CommentedMap(source.to_dict())


def _set_source(item: MutableMapping[str, Any], source: TagReference, own: Own) -> None:
    current = own(item, "from")
    if not isinstance(current, MutableMapping):
        if "from" in item:
            item["from"] = _source_map(source)
        else:
            _insert(item, _position_after(item, "name"), "from", _source_map(source))
        return
    _assign(current, "kind", source.kind)
    _assign(current, "name", source.name)
    if source.namespace:
        _assign(current, "namespace", source.namespace)
    else:
        current.pop("namespace", None)


def _set_scheduled(item: MutableMapping[str, Any], scheduled: bool, own: Own) -> None:
    policy = own(item, "importPolicy")
    if not isinstance(policy, MutableMapping):
        if not scheduled:
            return
        policy = CommentedMap()
        if "importPolicy" in item:
            item["importPolicy"] = policy
        else:
            _insert(item, _position_after(item, "from"), "importPolicy", policy)
    _assign(policy, "scheduled", scheduled)


def _new_tag(
    siblings: list[Any], tag: str, source: TagReference, scheduled: bool | None
) -> CommentedMap:
    """A new tag entry; ``from``/``importPolicy`` take the flow or block style of its siblings."""
    item = CommentedMap([("name", tag), ("from", _source_map(source))])
    if scheduled:
        item["importPolicy"] = CommentedMap([("scheduled", True)])
    for key in ("from", "importPolicy"):
        for sibling in siblings:
            value = sibling.get(key) if isinstance(sibling, dict) else None
            if isinstance(value, CommentedMap):
                if value.fa.flow_style() and key in item:
                    item[key].fa.set_flow_style()
                break
    return item


# --- shared nodes ------------------------------------------------------------------------------
# A YAML alias (``from: *src``) or merge key (``<<: *defaults``) makes several tags hold the very
# same mapping; editing it in place would change all of them. Edits take the mapping they change
# through ``own``, which first gives the parent a copy of its own when the mapping is shared.

Own = Callable[[Any, Any], Any]


def _containers(node: Any) -> list[Any]:
    """The mappings and lists directly inside ``node``, and the mappings it merges (``<<``)."""
    if isinstance(node, dict):
        values = [*node.values(), *(getattr(node, "merge", None) or ())]
    else:
        values = node if isinstance(node, list) else []
    return [value for value in values if isinstance(value, dict | list)]


def _shared(root: Any) -> set[int]:
    """ids of the mappings and lists a document reaches more than once."""
    seen: set[int] = set()
    shared: set[int] = set()
    pending = [root]
    while pending:
        for value in _containers(pending.pop()):
            if id(value) in seen:
                shared.add(id(value))
            else:
                seen.add(id(value))
                pending.append(value)
    return shared


def _reaches_shared(node: Any, shared: set[int]) -> bool:
    """True when ``node`` or anything inside it is shared (an anchor other nodes use)."""
    pending = [node]
    while pending:
        current = pending.pop()
        if id(current) in shared:
            return True
        pending += _containers(current)
    return False


def _owner(shared: set[int]) -> Own:
    """``own(parent, key)``: the value at a mapping's key or a list's index, first made the
    parent's own copy when it is shared."""

    def own(parent: Any, key: Any) -> Any:
        value = parent[key] if isinstance(parent, list) else parent.get(key)
        if not isinstance(value, dict | list) or id(value) not in shared:
            return value
        copy: CommentedMap | CommentedSeq
        copy = CommentedMap(value.items()) if isinstance(value, dict) else CommentedSeq(value)
        if isinstance(value, CommentedMap | CommentedSeq) and value.fa.flow_style():
            copy.fa.set_flow_style()
        parent[key] = copy
        shared.update(id(child) for child in _containers(copy))  # now held twice too
        return copy

    return own


def _plain(parent: Any, key: Any) -> Any:
    """``own`` for JSON, which has no aliases."""
    return parent[key] if isinstance(parent, list) else parent.get(key)


# --- locating the stream -----------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    """The one document of a file that defines the stream, parsed."""

    lines: list[str]  # the whole file
    start: int  # the document's lines are lines[start:end]
    end: int
    yaml: YAML
    stream: CommentedMap
    shared: set[int]  # ids of the document's nodes that aliases or merges reach twice

    @property
    def segment(self) -> list[str]:
        return self.lines[self.start : self.end]

    def with_segment(self, segment: list[str]) -> str:
        return "".join(self.lines[: self.start] + segment + self.lines[self.end :])


def _objects(root: Any) -> list[Any]:
    """The ImageStream objects of one document (the document, or a List's items)."""
    if not isinstance(root, dict):
        return []
    if root.get("kind") in LIST_KINDS:
        return [item for item in root.get("items") or () if isinstance(item, dict)]
    return [root] if root.get("kind") == KIND else []


def _matches(obj: Any, where: StreamLocation) -> bool:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or meta.get("name") != where.name:
        return False
    return (meta.get("namespace") or where.implied_namespace) == where.namespace


def _segments(lines: list[str]) -> list[tuple[int, int]]:
    """``[start, end)`` line ranges of the documents; a ``---`` line starts a new one, together
    with the directives (``%YAML 1.2``) written right above it."""
    starts = [0]
    for i, line in enumerate(lines):
        if not i or not _MARKER_RE.match(line):
            continue
        start = i
        for j in range(i - 1, starts[-1] - 1, -1):
            if lines[j].startswith("%"):
                start = j
            elif lines[j].strip() and not _is_comment(lines[j]):
                break
        if start > starts[-1]:  # else only directives and comments come before: one document
            starts.append(start)
    return list(zip(starts, [*starts[1:], len(lines)], strict=True))


def _not_found(where: StreamLocation, count: int) -> InputError:
    if count == 0:
        return InputError(f"{where.path} does not define image stream {where}")
    return InputError(
        f"{where.path} defines image stream {where} {count} times",
        hint="remove the duplicates first (streamlock validate)",
    )


def _locate(lines: list[str], where: StreamLocation) -> _Target:
    found: list[_Target] = []
    for start, end in _segments(lines):
        segment = lines[start:end]
        if not "".join(segment).strip():
            continue
        yaml = _yaml(*_guess_indent(segment))
        root = _load(yaml, "".join(segment), where.path)
        shared = _shared(root)
        found += [
            _Target(lines, start, end, yaml, obj, shared)
            for obj in _objects(root)
            if _matches(obj, where)
        ]
    if len(found) != 1:
        raise _not_found(where, len(found))
    return found[0]


def _load(yaml: YAML, text: str, path: str) -> Any:
    try:
        return yaml.load(text)
    except YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from exc


# --- applying an edit --------------------------------------------------------------------------

TreeEdit = Callable[[MutableMapping[str, Any], Own], None]
TextEdit = Callable[[_Target], "list[str] | None"]


def _edit(text: str, where: StreamLocation, tree: TreeEdit, text_edit: TextEdit | None) -> str:
    """Run one edit on a file's text; line endings and a missing final newline are kept."""
    crlf = "\r\n" in text
    body = text.replace("\r\n", "\n")
    final_newline = body.endswith("\n") or not body
    if not final_newline:
        body += "\n"
    if where.path.endswith(".json"):
        result = _edit_json(body, where, tree)
    else:
        result = _edit_yaml(body, where, tree, text_edit)
    if not final_newline and result.endswith("\n"):
        result = result[:-1]
    return result.replace("\n", "\r\n") if crlf else result


def _edit_yaml(text: str, where: StreamLocation, tree: TreeEdit, text_edit: TextEdit | None) -> str:
    lines = text.splitlines(keepends=True)
    target = _locate(lines, where)
    if text_edit is not None:
        segment = text_edit(target)
        if segment is not None:
            return target.with_segment(segment)
    original = target.segment
    explicit = _explicit_start(original)
    target.yaml.explicit_start = explicit
    unedited = _load(target.yaml, "".join(original), where.path)
    normalised = _dump(target.yaml, unedited).splitlines(keepends=True)
    root = _load(target.yaml, "".join(original), where.path)
    stream = next(obj for obj in _objects(root) if _matches(obj, where))
    tree(stream, _owner(_shared(root)))
    edited = _lift_insertions(normalised, _dump(target.yaml, root).splitlines(keepends=True))
    return target.with_segment(_merge(original, normalised, edited))


def _merge(original: list[str], normalised: list[str], edited: list[str]) -> list[str]:
    """The edit spliced into the person's lines, unless that would change what they say."""
    spliced = _splice(original, normalised, edited)
    if spliced is not edited and not _same_data(spliced, edited):
        return edited
    return spliced


def _same_data(left: list[str], right: list[str]) -> bool:
    """True when two texts load to the same data (a safety net for ``_splice``)."""
    loader = YAML(typ="safe", pure=True)
    try:
        return bool(loader.load("".join(left)) == loader.load("".join(right)))
    except YAMLError:
        return False


def _edit_json(text: str, where: StreamLocation, tree: TreeEdit) -> str:
    try:
        root = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where.path}: not valid JSON: {exc.msg}") from exc
    found = [obj for obj in _objects(root) if _matches(obj, where)]
    if len(found) != 1:
        raise _not_found(where, len(found))
    tree(found[0], _plain)
    return json.dumps(root, indent=_json_indent(text), ensure_ascii=False) + "\n"


def _json_indent(text: str) -> int | str | None:
    """The indentation a JSON file uses: None for one line, a tab, or a number of spaces."""
    lines = text.splitlines()
    if len(lines) < 2:
        return None
    for line in lines[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            return "\t" if line.startswith("\t") else len(line) - len(stripped)
    return 0


def _lift_insertions(normalised: list[str], edited: list[str]) -> list[str]:
    """Move inserted lines above the comments that belong to what follows them.

    ruamel keeps a comment written above a key or list item as a trailer of the value before it,
    so a key added at the end of that value lands below the comment. An inserted block is
    therefore placed before any blank lines and less-indented comments right above it.
    """
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, normalised, edited, autojunk=False)
    for op, _, _, j1, j2 in matcher.get_opcodes():
        block = edited[j1:j2]
        content = [line for line in block if line.strip() and not _is_comment(line)]
        if op != "insert" or not content:
            out += block
            continue
        depth = _indent(content[0])
        at = len(out)
        while at > 0 and (
            not out[at - 1].strip() or (_is_comment(out[at - 1]) and _indent(out[at - 1]) < depth)
        ):
            at -= 1
        out[at:at] = block
    return out


def _shape(line: str) -> str:
    """A line without the spacing ruamel normalises, to pair the person's lines with ruamel's."""
    text = " ".join(line.split())
    return _BRACKET_SPACE_RE.sub(lambda m: m.group(0).replace(" ", ""), text)


def _splice(original: list[str], normalised: list[str], edited: list[str]) -> list[str]:
    """Apply the changes ``normalised`` → ``edited`` to ``original``.

    ``normalised`` is what ruamel writes for the unedited document. Each changed line replaces
    the person's line it corresponds to, so only the edited lines change; when an edit falls
    where ruamel re-arranged lines (not one for one), the whole re-emitted document is returned
    instead (correct, only noisier).
    """
    if original == normalised or normalised == edited:
        return edited if original == normalised else original
    to_original: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(
        None, [_shape(x) for x in original], [_shape(x) for x in normalised], autojunk=False
    )
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        # Equal lines, and lines ruamel re-formatted one for one, correspond.
        if op == "equal" or (op == "replace" and a2 - a1 == b2 - b1):
            for k in range(b2 - b1):
                to_original[b1 + k] = a1 + k
    out = list(original)
    changes = difflib.SequenceMatcher(None, normalised, edited, autojunk=False).get_opcodes()
    for op, i1, i2, j1, j2 in reversed(changes):
        if op == "equal":
            continue
        if i1 < i2:
            if any(i not in to_original for i in range(i1, i2)):
                return edited
            o1, o2 = to_original[i1], to_original[i2 - 1] + 1
            if o2 - o1 != i2 - i1:
                return edited
            anchor = i1
        elif i1 > 0 and i1 - 1 in to_original:
            o1 = o2 = to_original[i1 - 1] + 1
            anchor = i1 - 1
        elif i1 in to_original:
            o1 = o2 = to_original[i1]
            anchor = i1
        else:
            return edited
        # Where the person indents differently from ruamel, shift the new lines the same way.
        shift = _indent(original[to_original[anchor]]) - _indent(normalised[anchor])
        block = _shifted(edited[j1:j2], shift)
        if block is None:
            return edited
        out[o1:o2] = block
    return out


def _shifted(lines: list[str], shift: int) -> list[str] | None:
    """Lines indented ``shift`` columns more (or less); None when they cannot move that far."""
    if shift >= 0:
        return [" " * shift + line if line.strip() else line for line in lines]
    if any(line.strip() and _indent(line) < -shift for line in lines):
        return None
    return [line[-shift:] if line.strip() else line for line in lines]


# --- text-level list edits ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    """A block list item's lines ``[start, end)``, with its leading comments."""

    start: int
    end: int
    dash_col: int
    content_col: int


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _block_tags(target: _Target) -> CommentedSeq | None:
    """The stream's tags when they are a block list of its own (not reached through an alias)."""
    spec = target.stream.get("spec")
    tags = spec.get("tags") if isinstance(spec, dict) else None
    if not isinstance(tags, CommentedSeq) or not tags or tags.fa.flow_style():
        return None
    if id(spec) in target.shared or id(tags) in target.shared:
        return None
    return tags


def _item_span(segment: list[str], tags: CommentedSeq, index: int) -> _Span | None:
    """Where item ``index`` of a block list is written; None for shapes left to ruamel."""
    line, column = tags.lc.item(index)
    text = segment[line]
    before = text[:column]
    if before.strip() != "-" or "\t" in before:
        return None
    dash_col = before.index("-")
    last = line
    for j in range(line + 1, len(segment)):
        current = segment[j]
        if not current.strip():
            continue
        if _indent(current) <= dash_col:
            break
        if not _is_comment(current) or last == j - 1:
            last = j
    start = line
    while start > 0 and _is_comment(segment[start - 1]) and _indent(segment[start - 1]) == dash_col:
        start -= 1
    return _Span(start, last + 1, dash_col, column)


def _render_item(yaml: YAML, item: CommentedMap, dash_col: int, content_col: int) -> list[str]:
    """``- name: …`` lines for a new list item at the given columns."""
    body = _dump(yaml, item).splitlines(keepends=True)
    first = " " * dash_col + "-" + " " * (content_col - dash_col - 1) + body[0]
    return [first] + [(" " * content_col + line) if line.strip() else line for line in body[1:]]


# --- ruamel configuration ----------------------------------------------------------------------


def _yaml(mapping: int, sequence: int, offset: int) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.allow_unicode = True
    yaml.indent(mapping=mapping, sequence=max(sequence, offset + 2), offset=offset)
    return yaml


def _dump(yaml: YAML, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _explicit_start(lines: list[str]) -> bool:
    """True when the document's first content line is a ``---`` marker."""
    first = next((line for line in lines if line.strip() and not _is_comment(line)), "")
    return bool(_MARKER_RE.match(first))


def _guess_indent(lines: list[str]) -> tuple[int, int, int]:
    """``(mapping, sequence, offset)`` as ruamel's ``indent()`` takes them, read off the text."""
    mapping: int | None = None
    sequence: int | None = None
    offset: int | None = None
    parent: int | None = None  # column of the previous line's key when it opened a block
    for raw in lines:
        line = raw.rstrip("\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _MARKER_RE.match(line):
            continue
        column = _indent(line)
        dash = stripped == "-" or stripped.startswith("- ")
        if parent is not None and column >= parent:
            if dash and offset is None:
                after = stripped[1:]
                offset = column - parent
                sequence = offset + 1 + len(after) - len(after.lstrip(" "))
            elif not dash and column > parent and mapping is None:
                mapping = column - parent
        key_col = column
        if dash:
            after = stripped[1:]
            key_col = column + 1 + len(after) - len(after.lstrip(" "))
        bare = _COMMENT_RE.sub("", stripped)
        parent = key_col if bare.endswith(":") else None
        if mapping is not None and offset is not None:
            break
    offset = 0 if offset is None else offset
    sequence = offset + 2 if sequence is None else sequence
    return (mapping or 2, sequence, offset)
