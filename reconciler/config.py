"""``streamlock.yaml``: the repository's configuration. Every field has a default."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import schema
from reconciler.errors import InputError, Problem, ValidationError

CONFIG_FILE = "streamlock.yaml"

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# The same pattern is in schemas/config.schema.json.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(h|ms|m|s))+$"


def parse_duration(text: str) -> float:
    """Go-style duration (``15m``, ``1h30m``, ``90s``) in seconds."""
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise InputError(f"invalid duration {text!r}", hint="use Go syntax such as 15m or 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


@dataclass(frozen=True, slots=True)
class RegistryAuth:
    """Where credentials come from; the secret itself is never in the config."""

    config_file: str | None = None
    auth_file: str | None = None
    helper: str | None = None
    username_env: str | None = None
    password_env: str | None = None


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    host: str
    auth: RegistryAuth | None = None
    mirrors: tuple[str, ...] = ()
    concurrency: int = 8
    requests_per_second: float | None = None
    insecure: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class GitConfig:
    branch: str | None = None  # None: the branch checked out
    push: str = "direct"  # direct | branch
    author: str = "streamlock <streamlock@localhost>"
    grouping: str = "stream"  # tag | stream | pass
    remote: str | None = None  # None: the remote the branch tracks


@dataclass(frozen=True, slots=True)
class ResolveTimeouts:
    """Seconds the registry work may take: per tag (every request and retry of it, the first
    attempt included) and per pass (all tags); a tag out of time fails alone, transiently."""

    tag: float = 120.0
    pass_: float = 600.0


@dataclass(frozen=True, slots=True)
class AccessRule:
    owners: tuple[str, ...] = ()
    pullers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    default_namespace: str = "default"
    platform: str = "linux/amd64"
    import_interval: float = 900.0
    history_limit: int = 10
    local_registry: str | None = None
    allowed_registries: tuple[str, ...] | None = None
    registries: tuple[RegistryConfig, ...] = ()
    git: GitConfig = field(default_factory=GitConfig)
    consumers: tuple[str, ...] = ("deploy/**/*.yaml", "deploy/**/*.yml")
    access: Mapping[str, AccessRule] = field(default_factory=dict)
    config_owners: tuple[str, ...] = ()
    timeouts: ResolveTimeouts = field(default_factory=ResolveTimeouts)

    def registry(self, host: str) -> RegistryConfig | None:
        for registry in self.registries:
            if registry.host == host:
                return registry
        return None

    def registry_allowed(self, host: str) -> bool:
        if self.allowed_registries is None:
            return True
        return any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allowed_registries)

    def may_pull(self, source_namespace: str, consumer_namespace: str) -> bool:
        """Cross-namespace follow/pin needs a grant, like ``system:image-puller``."""
        if source_namespace == consumer_namespace:
            return True
        rule = self.access.get(source_namespace)
        return rule is not None and (consumer_namespace in rule.pullers or "*" in rule.pullers)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Config:
        """Build from already schema-checked data."""
        data = data or {}
        git = data.get("git") or {}
        registries = []
        for item in data.get("registries") or []:
            auth = item.get("auth")
            env = (auth or {}).get("env") or {}
            registries.append(
                RegistryConfig(
                    host=item["host"],
                    auth=None
                    if auth is None
                    else RegistryAuth(
                        config_file=auth.get("configFile"),
                        auth_file=auth.get("authFile"),
                        helper=auth.get("helper"),
                        username_env=env.get("username"),
                        password_env=env.get("password"),
                    ),
                    mirrors=tuple(item.get("mirrors") or ()),
                    concurrency=int(item.get("concurrency", 8)),
                    requests_per_second=item.get("requestsPerSecond"),
                    insecure=bool(item.get("insecure", False)),
                    ca_file=item.get("caFile"),
                    cert_file=item.get("certFile"),
                    key_file=item.get("keyFile"),
                )
            )
        access = {
            ns: AccessRule(
                owners=tuple((rule or {}).get("owners") or ()),
                pullers=tuple((rule or {}).get("pullers") or ()),
            )
            for ns, rule in (data.get("access") or {}).items()
        }
        allowed = data.get("allowedRegistries")
        defaults = cls()
        return cls(
            default_namespace=data.get("defaultNamespace", defaults.default_namespace),
            platform=data.get("platform", defaults.platform),
            import_interval=parse_duration(data["importInterval"])
            if "importInterval" in data
            else defaults.import_interval,
            history_limit=int(data.get("historyLimit", defaults.history_limit)),
            local_registry=data.get("localRegistry"),
            allowed_registries=None if allowed is None else tuple(allowed),
            registries=tuple(registries),
            git=GitConfig(
                branch=git.get("branch"),
                push=git.get("push", "direct"),
                author=git.get("author", GitConfig().author),
                grouping=git.get("grouping", "stream"),
                remote=git.get("remote"),
            ),
            consumers=tuple(
                defaults.consumers if data.get("consumers") is None else data["consumers"]
            ),
            access=access,
            config_owners=tuple(data.get("configOwners") or ()),
            timeouts=_timeouts(data.get("timeouts") or {}),
        )


def _timeouts(data: Mapping[str, Any]) -> ResolveTimeouts:
    defaults = ResolveTimeouts()
    return ResolveTimeouts(
        tag=parse_duration(data["tag"]) if "tag" in data else defaults.tag,
        pass_=parse_duration(data["pass"]) if "pass" in data else defaults.pass_,
    )


def config_path(root: Path) -> Path:
    return root / CONFIG_FILE


# --- loading streamlock.yaml -------------------------------------------------------------------


def _config_problems(doc: schema.Document) -> list[Problem]:
    """Checks the schema cannot express: one entry per registry host, a positive interval."""
    problems = [problem for _, problem in schema.check(doc, schema.CONFIG_SCHEMA)]
    if problems:
        return problems
    first: dict[str, int] = {}
    for index, registry in enumerate(doc.data.get("registries") or ()):
        where = ("registries", index, "host")
        line = doc.position(where)[0]
        if registry["host"] in first:
            problems.append(
                doc.problem(
                    where,
                    f"registry {registry['host']} is already configured on line "
                    f"{first[registry['host']]}",
                )
            )
        first.setdefault(registry["host"], line)
    interval = doc.data.get("importInterval")
    if interval is not None and parse_duration(interval) <= 0:
        problems.append(doc.problem(("importInterval",), "must be longer than 0s"))
    for key, value in (doc.data.get("timeouts") or {}).items():
        if parse_duration(value) <= 0:
            problems.append(doc.problem(("timeouts", key), "must be longer than 0s"))
    return problems


def parse_config(data: bytes, path: str = CONFIG_FILE) -> Config:
    """``streamlock.yaml`` bytes → Config (pure); ValidationError lists every located problem."""
    documents = schema.parse_documents(data, path)
    if len(documents) > 1:
        raise ValidationError(
            [documents[1].problem((), "streamlock.yaml holds one document, found more")]
        )
    if not documents:
        return Config()
    problems = _config_problems(documents[0])
    if problems:
        raise ValidationError(problems)
    return Config.from_mapping(documents[0].data)


def load_config(root: Path, path: Path | None = None) -> Config:
    """The repository's config; a missing ``streamlock.yaml`` means every default.

    A ``path`` named explicitly may lie outside the repository, but must exist.
    """
    if path is None:
        if not config_path(root).exists() and not config_path(root).is_symlink():
            return Config()
        return parse_config(schema.read_repo_file(root, CONFIG_FILE), CONFIG_FILE)
    shown = schema.repo_relative(root, path)
    try:
        with path.open("rb") as handle:
            data = handle.read(schema.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot read the config: {exc.strerror}", hint="check --config"
        ) from exc
    return parse_config(data, shown)
