"""Loading ``streamlock.yaml``: defaults, every documented field, located typos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.config import Config, GitConfig, load_config, parse_config
from reconciler.errors import InputError, ValidationError

DESIGN_EXAMPLE = """\
apiVersion: streamlock/v1
kind: Config
defaultNamespace: default
platform: linux/amd64
importInterval: 15m
historyLimit: 10
localRegistry: registry.internal.example:5000
allowedRegistries: ["quay.io", "*.redhat.io"]
registries:
  - host: quay.io
    auth: {configFile: ~/.docker/config.json}
    mirrors: [mirror.example.com/quay]
    concurrency: 8
    requestsPerSecond: 20
  - host: registry.lab.example:5000
    insecure: true
    caFile: certs/lab-ca.pem
git:
  branch: main
  push: direct
  author: streamlock <streamlock@example.com>
  grouping: stream
consumers: ["deploy/**/*.yaml"]
access:
  shop:
    owners: ["@example/shop-team"]
    pullers: [staging]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_config(text.encode())
    return [str(p) for p in caught.value.problems]


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    """No streamlock.yaml is a valid repository with every default."""
    assert load_config(tmp_path) == Config()


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty (or comment-only) streamlock.yaml is valid."""
    (tmp_path / "streamlock.yaml").write_text("# nothing configured yet\n")
    assert load_config(tmp_path) == Config()


def test_design_example_loads_every_field() -> None:
    """The DESIGN.md example is accepted and every value reaches Config."""
    config = parse_config(DESIGN_EXAMPLE.encode())
    quay, lab = config.registries
    assert (config.import_interval, config.history_limit, config.local_registry) == (
        900.0,
        10,
        "registry.internal.example:5000",
    )
    assert config.allowed_registries == ("quay.io", "*.redhat.io")
    assert (quay.auth and quay.auth.config_file, quay.mirrors, quay.requests_per_second) == (
        "~/.docker/config.json",
        ("mirror.example.com/quay",),
        20,
    )
    assert (lab.insecure, lab.ca_file) == (True, "certs/lab-ca.pem")
    assert (config.git.branch, config.git.author) == ("main", "streamlock <streamlock@example.com>")
    assert config.access["shop"].pullers == ("staging",)


def test_top_level_typo_is_located_with_a_suggestion() -> None:
    """An unknown top-level key is an error at the key, naming the likely intent."""
    assert problems("platform: linux/arm64\nimportIntervall: 5m\n") == [
        "streamlock.yaml:2:1: importIntervall: unknown field 'importIntervall'; "
        "did you mean 'importInterval'?"
    ]


def test_nested_typo_is_located() -> None:
    """A misspelt registry field is caught at its key inside the list."""
    text = "registries:\n  - host: quay.io\n    insecur: true\n"
    assert problems(text) == [
        "streamlock.yaml:3:5: registries[0].insecur: unknown field 'insecur'; "
        "did you mean 'insecure'?"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900.0), ("90s", 90.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5)],
)
def test_durations_use_go_syntax(text: str, seconds: float) -> None:
    """importInterval takes Go durations."""
    assert parse_config(f"importInterval: {text}\n".encode()).import_interval == seconds


@pytest.mark.parametrize("text", ["15", "15 m", "15min", "-5m", "15m\\n"])
def test_bad_durations_are_located(text: str) -> None:
    """A duration outside Go syntax is reported at the value with an example of the syntax."""
    (problem,) = problems(f'importInterval: "{text}"\n')
    assert problem.startswith("streamlock.yaml:1:17: importInterval: ")
    assert problem.endswith("is not a valid duration (Go syntax such as 15m, 90s or 1h30m)")


def test_zero_interval_is_refused() -> None:
    """A zero import interval would re-import without pause."""
    assert problems("importInterval: 0s\n") == [
        "streamlock.yaml:1:17: importInterval: must be longer than 0s"
    ]


def test_auth_takes_exactly_one_source() -> None:
    """Credentials come from one place per registry."""
    text = "registries:\n- host: quay.io\n  auth: {configFile: a.json, helper: pass}\n"
    assert problems(text) == [
        "streamlock.yaml:3:9: registries[0].auth: not a valid registry auth "
        "(give exactly one of configFile, authFile, helper or env)"
    ]


def test_client_certificate_needs_its_key() -> None:
    """certFile without keyFile is reported on the registry."""
    text = "registries:\n- host: quay.io\n  certFile: c.pem\n"
    assert problems(text) == ["streamlock.yaml:2:3: registries[0]: certFile needs keyFile"]


def test_registry_configured_twice_is_refused() -> None:
    """Two entries for one host would make the lookup ambiguous."""
    text = "registries:\n- host: quay.io\n- host: ghcr.io\n- host: quay.io\n"
    assert problems(text) == [
        "streamlock.yaml:4:9: registries[2].host: registry quay.io is already configured on line 2"
    ]


def test_wrong_kind_is_reported() -> None:
    """apiVersion and kind, when given, must name the config."""
    assert problems("apiVersion: streamlock/v2\n") == [
        "streamlock.yaml:1:13: apiVersion: expected 'streamlock/v1', got 'streamlock/v2'"
    ]


def test_several_documents_are_refused() -> None:
    """streamlock.yaml is one document; a second one is reported where it starts."""
    assert problems("platform: linux/amd64\n---\nplatform: linux/arm64\n") == [
        "streamlock.yaml:3:1: streamlock.yaml holds one document, found more"
    ]


def test_git_section_without_author_keeps_the_default_author() -> None:
    """Omitted git fields fall back to their defaults."""
    config = parse_config(b"git: {push: branch}\n")
    assert (config.git.push, config.git.author) == ("branch", GitConfig().author)


def test_access_pullers_take_namespaces_or_star() -> None:
    """A puller must be a namespace name or ``*``."""
    (problem,) = problems("access:\n  shop: {pullers: ['*', Staging]}\n")
    assert problem.startswith("streamlock.yaml:2:25: access.shop.pullers[1]: 'Staging' is not")


def test_explicit_path_outside_the_repo_is_read(tmp_path: Path) -> None:
    """``--config`` may point anywhere; problems name that path."""
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("historyLimit: 0\n")
    with pytest.raises(ValidationError) as caught:
        load_config(tmp_path / "repo", elsewhere)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line, problem.column) == (str(elsewhere), 1, 15)


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    """A ``--config`` that does not exist is an error, not silent defaults."""
    with pytest.raises(InputError, match="cannot read the config"):
        load_config(tmp_path, tmp_path / "nope.yaml")


def test_config_symlinked_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    """The repository's own streamlock.yaml may not link outside the repository."""
    (tmp_path / "outside.yaml").write_text("platform: linux/arm64\n")
    (tmp_path / "repo").mkdir()
    os.symlink(tmp_path / "outside.yaml", tmp_path / "repo" / "streamlock.yaml")
    with pytest.raises(ValidationError, match="symlink points outside the repository"):
        load_config(tmp_path / "repo")


def test_config_in_a_symlink_loop_is_a_located_problem(tmp_path: Path) -> None:
    """A streamlock.yaml in a symlink loop is reported, not a crash."""
    os.symlink("other.yaml", tmp_path / "streamlock.yaml")
    os.symlink("streamlock.yaml", tmp_path / "other.yaml")
    with pytest.raises(ValidationError, match=r"streamlock\.yaml:1:1: not a regular file"):
        load_config(tmp_path)


def test_empty_consumers_list_switches_consumers_off():
    """consumers: [] means none, not the default globs."""
    from reconciler.config import Config

    assert Config.from_mapping({"consumers": []}).consumers == ()
    assert Config.from_mapping({}).consumers == Config().consumers
