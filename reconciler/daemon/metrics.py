"""Prometheus metrics of one daemon, in a registry of its own (no process-global state)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
TAG_STATES = ("ready", "failed", "stalled")


class Metrics:
    """Counters of what happened; ``render`` gives the text exposition format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter(
            "streamlock_pass", "Passes by result (success, failed: some tags failed, error).",
            ["result"], registry=r,
        )  # fmt: skip
        self.pass_duration = Histogram(
            "streamlock_pass_duration_seconds", "Duration of a pass, fetch to push.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r,
        )  # fmt: skip
        self.bumps = Counter(
            "streamlock_tag_bumps", "Tags whose pinned image moved, pushed to the remote.",
            registry=r,
        )  # fmt: skip
        self.registry_requests = Counter(
            "streamlock_registry_requests", "HTTP exchanges with registries, by status code.",
            ["registry", "code"], registry=r,
        )  # fmt: skip
        self.registry_duration = Histogram(
            "streamlock_registry_request_duration_seconds", "One HTTP exchange with a registry.",
            ["registry"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )  # fmt: skip
        self.push_conflicts = Counter(
            "streamlock_push_conflicts", "Pushes the remote declined because the branch moved.",
            registry=r,
        )  # fmt: skip
        self.git_errors = Counter(
            "streamlock_git_errors", "Passes that failed on a git operation (fetch, push, clone).",
            registry=r,
        )  # fmt: skip
        self.tags = Gauge(
            "streamlock_tags", "Tags by state after the last pass.", ["state"], registry=r
        )
        self.last_success = Gauge(
            "streamlock_last_success_timestamp_seconds",
            "Unix time of the last pass that ended without an error.", registry=r,
        )  # fmt: skip
        self.hooks = Counter(
            "streamlock_hooks", "Webhook deliveries by kind and outcome.", ["kind", "outcome"],
            registry=r,
        )  # fmt: skip
        for state in TAG_STATES:
            self.tags.labels(state).set(0)
        for result in ("success", "failed", "error"):
            self.passes.labels(result)

    def observe_request(self, registry: str, code: int, seconds: float) -> None:
        """The registry client's observer hook (called once per HTTP exchange)."""
        self.registry_requests.labels(registry, str(code)).inc()
        self.registry_duration.labels(registry).observe(seconds)

    def set_tags(self, counts: Mapping[str, int]) -> None:
        for state in TAG_STATES:
            self.tags.labels(state).set(counts.get(state, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
