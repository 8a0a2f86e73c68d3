"""Choosing a tag from a repository's listing: Flux ``ImagePolicy`` semantics, pure.

A policy orders the *allowed* candidates (they match ``tag-filter``, miss ``tag-exclude`` and
parse under the policy) and picks the highest. Semver ranges use ``packaging``'s specifiers, the
way Flux uses Masterminds' constraints: a ``v`` prefix is tolerated and pre-releases count only
when the range itself names one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

SEMVER = "semver"
NUMERICAL = "numerical"
ALPHABETICAL = "alphabetical"
NEWEST_BUILD = "newest-build"
KINDS = (SEMVER, NUMERICAL, ALPHABETICAL, NEWEST_BUILD)
ASC = "asc"
DESC = "desc"
DEFAULT_CANDIDATES = 10
MAX_CANDIDATES = 100
NEAREST = 3
_WILDCARD_RE = re.compile(r"^(==|!=)?\s*v?(\d+(?:\.\d+)*)\.[x*]$")


class PolicyError(ValueError):
    """A policy annotation that cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """How to pick one tag of a repository.

    ``order``: ``asc`` picks the highest value, ``desc`` the lowest (Flux's spelling). A named
    group of ``tag_filter`` is the value ordered instead of the tag (Flux's ``extract``).
    """

    kind: str
    spec: str = ""
    order: str = ASC
    tag_filter: str | None = None
    exclude: str | None = None
    candidates: int = DEFAULT_CANDIDATES

    @property
    def text(self) -> str:
        """The policy as written in the annotation."""
        if self.kind == SEMVER:
            return f"{SEMVER}:{self.spec}"
        if self.kind == NEWEST_BUILD:
            return NEWEST_BUILD
        return f"{self.kind}:{self.order}"


def parse_range(text: str) -> SpecifierSet:
    """A semver range: ``>=1.2.0 <2``, ``>=1.2,<2``, ``1.4.x``, ``~=1.4``; a bare version is ``==``.

    Spaces and commas both separate clauses (Masterminds and PEP 440 spellings).
    """
    clauses = [c for c in re.split(r"[\s,]+", text.strip()) if c]
    if not clauses:
        raise PolicyError("a semver range is needed, such as semver:>=1.2.0 <2")
    converted = []
    for clause in _joined(clauses):
        wildcard = _WILDCARD_RE.match(clause)
        if wildcard:
            converted.append(f"{wildcard.group(1) or '=='}{wildcard.group(2)}.*")
        elif clause[0].isdigit() or clause[0] == "v":
            converted.append(f"=={clause.removeprefix('v')}")
        else:
            converted.append(re.sub(r"^([<>=!~]+)v", r"\1", clause))
    try:
        return SpecifierSet(",".join(converted))
    except InvalidSpecifier as exc:
        raise PolicyError(f"invalid semver range {text!r}: {exc}") from exc


def _joined(clauses: Sequence[str]) -> list[str]:
    """``>= 1.2`` written with a space: the operator joins the version after it."""
    out: list[str] = []
    for clause in clauses:
        if out and re.fullmatch(r"[<>=!~]+", out[-1]):
            out[-1] += clause
        else:
            out.append(clause)
    return out


def parse_version(text: str) -> Version | None:
    """A tag (or extracted value) as a version; ``v1.2.3`` and ``1.2.3-rc.1`` parse."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def make_policy(
    text: str,
    *,
    tag_filter: str | None = None,
    exclude: str | None = None,
    candidates: int = DEFAULT_CANDIDATES,
) -> TagPolicy:
    """Parse a ``streamlock.dev/policy`` value with its companions; PolicyError when unusable."""
    kind, _, arg = text.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise PolicyError(f"unknown policy {kind!r}; use one of {', '.join(KINDS)}")
    for name, pattern in (("tag-filter", tag_filter), ("tag-exclude", exclude)):
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise PolicyError(f"invalid {name} regular expression: {exc}") from exc
            if name == "tag-filter" and len(compiled.groupindex) > 1:
                raise PolicyError("tag-filter may name at most one group, the value to order by")
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise PolicyError(f"candidates must be between 1 and {MAX_CANDIDATES}")
    if kind == SEMVER:
        parse_range(arg)
        return TagPolicy(SEMVER, arg.strip(), ASC, tag_filter, exclude, candidates)
    if kind == NEWEST_BUILD:
        if arg:
            raise PolicyError("newest-build takes no argument")
        return TagPolicy(NEWEST_BUILD, "", ASC, tag_filter, exclude, candidates)
    order = arg.strip() or ASC
    if order not in (ASC, DESC):
        raise PolicyError(f"{kind} order must be asc or desc, not {order!r}")
    return TagPolicy(kind, "", order, tag_filter, exclude, candidates)


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of a policy over a listing.

    ``winner`` is None when no candidate is allowed; ``nearest`` then names the closest tags
    (the highest that pass the filter but not the range, else a few listed tags).
    ``ranked`` holds the allowed candidates best first (the next one is tried when the best
    lacks a required platform); for ``newest-build`` the ``policy.candidates`` alphabetically
    highest, among which the images' ``created`` decide.
    """

    winner: str | None
    allowed: int
    listed: int
    nearest: tuple[str, ...] = ()
    ranked: tuple[str, ...] = ()


def _value(policy: TagPolicy, tag: str, pattern: re.Pattern[str] | None) -> str | None:
    """The text the policy orders: the tag, or the filter's named group; None if filtered out."""
    if pattern is None:
        return tag
    match = pattern.search(tag)
    if match is None:
        return None
    if pattern.groupindex:
        return match.group(next(iter(pattern.groupindex)))
    return tag


def _key(policy: TagPolicy, value: str) -> object | None:
    if policy.kind == SEMVER:
        return parse_version(value)
    if policy.kind == NUMERICAL:
        return parse_number(value)
    return value


def ranked(policy: TagPolicy, tags: Iterable[str]) -> tuple[list[tuple[object, str]], list[str]]:
    """``(allowed, filtered)``: allowed candidates as ``(key, tag)`` best first, and the tags
    that pass filter and exclusion but not the range (semver), best first."""
    pattern = re.compile(policy.tag_filter) if policy.tag_filter is not None else None
    exclude = re.compile(policy.exclude) if policy.exclude is not None else None
    spec = parse_range(policy.spec) if policy.kind == SEMVER else None
    # Flux: pre-releases only when the range names one (packaging would admit them otherwise).
    prereleases = bool(spec is not None and spec.prereleases)
    allowed: list[tuple[object, str]] = []
    outside: list[tuple[object, str]] = []
    for tag in tags:
        if exclude is not None and exclude.search(tag):
            continue
        value = _value(policy, tag, pattern)
        if value is None:
            continue
        key = _key(policy, value)
        if key is None:
            continue
        if spec is not None and not spec.contains(key, prereleases=prereleases):  # type: ignore[arg-type]
            outside.append((key, tag))
            continue
        allowed.append((key, tag))
    descending = policy.order != DESC
    allowed.sort(reverse=descending)
    outside.sort(reverse=True)
    return allowed, [tag for _, tag in outside]


def choose(policy: TagPolicy, tags: Sequence[str]) -> Choice:
    """The tag ``policy`` picks among ``tags``.

    Equal values (``1.2.3`` and ``v1.2.3``) are ordered by the tag string in the policy's
    direction, so the choice never depends on the listing's order.
    """
    unique = sorted(set(tags))
    allowed, outside = ranked(policy, unique)
    if not allowed:
        nearest = tuple(outside[:NEAREST]) or tuple(unique[-NEAREST:][::-1])
        return Choice(None, 0, len(unique), nearest)
    if policy.kind == NEWEST_BUILD:
        best = tuple(tag for _, tag in allowed[: policy.candidates])
        return Choice(best[0], len(allowed), len(unique), ranked=best)
    return Choice(allowed[0][1], len(allowed), len(unique), ranked=tuple(t for _, t in allowed))


def newest(created: Sequence[tuple[str, str | None]]) -> str | None:
    """Among ``(tag, created)`` pairs, the tag with the latest RFC 3339 ``created``.

    Times are compared as text after a light normalisation (RFC 3339 UTC sorts as text); a
    candidate without ``created`` never wins over one with it; ties go to the greater tag.
    """
    dated = [(_utc(c), tag) for tag, c in created if c]
    if dated:
        return max(dated)[1]
    return max((tag for tag, _ in created), default=None)


def _utc(text: str) -> str:
    return text.replace("+00:00", "Z").replace("z", "Z")
