"""The daemon's shell: one event loop runs HTTP and APScheduler; passes run one at a time.

Every trigger (the git poll, a tag's due time, a retry after an error, a webhook) only *asks*
for a pass: ``request`` sets a flag and starts the single ``pass`` job if it is not running.
The job drains the flag in a loop, so passes never overlap and a burst of triggers during a
pass makes exactly one more pass. A pass is the one-shot ``run_pass`` (in a worker thread,
since Git runs as blocking processes), preceded by a fetch and hard reset of the daemon's own
clone and restricted to what is due: scheduled tags whose time came or that a registry hook
named, new tags and changed specs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler import status
from reconciler.config import Config, load_config
from reconciler.credentials import AuthEntry, operator_store
from reconciler.daemon import workdir
from reconciler.daemon.hooks import PushedImage, ReplayGuard, matches
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.state import (
    Schedule,
    Shard,
    TagState,
    WatchedTag,
    status_document,
    tag_state,
    watched_tags,
)
from reconciler.errors import GitError, InputError, PushRejected, StreamlockError
from reconciler.gitrepo import GitRepo, TrailerIndex, redact
from reconciler.image import ImportFailure, ImportRequest, Observation
from reconciler.imagestream import load_streams
from reconciler.reconcile import PassOptions, PassResult, Resolver, run_pass

log = structlog.get_logger("streamlock.daemon")

STOP_GRACE = 25.0  # seconds SIGTERM waits for a pass in flight (Kubernetes gives 30 by default)
ERROR_RETRY_BASE = 2.0
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """What ``streamlock run`` was asked to do."""

    repo: str
    workdir: Path
    branch: str = "main"
    host: str = "127.0.0.1"
    port: int = 8080
    poll: float = 60.0
    shard: Shard = field(default_factory=Shard)
    registry_token: str | None = None
    git_secret: str | None = None
    stop_grace: float = STOP_GRACE
    auth: tuple[AuthEntry, ...] | None = None  # --auth-config; None: $STREAMLOCK_AUTH_CONFIG
    ui: bool = True  # serve the web view at /ui/ (--no-ui turns it off)
    commit_url: str | None = None  # forge link templates of the web view (already checked)
    edit_url: str | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the worker thread hands back to the loop after one pass."""

    result: PassResult
    config: Config
    tags: Mapping[str, WatchedTag]
    now: datetime
    entries: Mapping[str, Any]
    holds: Mapping[str, str]
    waiting: Mapping[str, str | None]
    looked_up: frozenset[str] = frozenset()


class _ShardResolver:
    """A registry client for one pass that reports each HTTP exchange to the metrics and
    refuses references no tag of this replica's namespaces imports."""

    def __init__(
        self,
        config: Config,
        root: Path,
        metrics: Metrics,
        allowed: Collection[str] | None,
        operator: Sequence[AuthEntry] | None = None,
    ) -> None:
        self.config = config
        self.root = root
        self.metrics = metrics
        self.allowed = allowed
        self.operator = operator

    def _client(self) -> Any:
        """A registry client with the operator's credentials, never the repository's
        (docs/access.md). The daemon retries a failed tag itself (at its next due time, with
        backoff), so one pass spends little on a registry that is down."""
        from reconciler.registry import RegistryClient, RetryPolicy

        retry = RetryPolicy(attempts=3, timeout=10.0, wait_max=2.0)
        store = operator_store(self.config, self.root, operator=self.operator)
        return RegistryClient(
            self.config,
            base_dir=self.root,
            retry=retry,
            observer=self.metrics.observe_request,
            credentials=store,
        )

    async def resolve_all(
        self, requests: Sequence[ImportRequest]
    ) -> Mapping[tuple[str, str, str], Observation]:
        mine = [r for r in requests if self._mine(r.reference)]
        results: dict[tuple[str, str, str], Observation] = {
            r.key: ImportFailure("NotInShard", "another replica imports this tag")
            for r in requests
            if r not in mine
        }
        if mine:
            async with self._client() as client:
                results.update(await client.resolve_all(mine))
        return results

    def _mine(self, reference: str) -> bool:
        """A reference of this shard: a source it imports, or a policy's ``repository:tag``."""
        if self.allowed is None or reference in self.allowed:
            return True
        return reference.rpartition(":")[0] in self.allowed

    async def list_all(self, references: Sequence[str]) -> Mapping[str, Any]:
        """Tag listings for the policy tags of this shard."""
        mine = [r for r in references if self._mine(r)]
        results: dict[str, Any] = {
            r: ImportFailure("NotInShard", "another replica imports this tag")
            for r in references
            if r not in mine
        }
        if mine:
            async with self._client() as client:
                results.update(await client.list_all(mine))
        return results


class Daemon:
    """State shared by the scheduler, the pass and the HTTP handlers (all on one loop)."""

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.metrics = Metrics()
        self.replays = ReplayGuard()
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.repo: GitRepo | None = None
        self.config: Config | None = None
        self.tags: dict[str, WatchedTag] = {}
        self.states: dict[str, TagState] = {}
        self.schedule = Schedule()
        self.hooked: set[str] = set()  # named by a hook during the running pass
        self.revision: str | None = None
        self.problems: list[str] = []
        self.last_pass: dict[str, Any] | None = None
        self.ready_error: str | None = "the first clone has not finished"
        self.checks: dict[str, bool] = {"clone": False, "config": False}
        self.wanted = False
        self.running = False
        self.stopping = False
        self.errors_in_a_row = 0
        self._stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._cached_tree: str | None = None
        # What the web view renders: the streams and locks of the last pass, and a count of
        # passes that ends any view built before (``/ui/`` refreshes when a pass ends).
        self.streams: tuple[Any, ...] = ()
        self.locks: Mapping[Any, Any] = {}
        self.passes = 0

    # --- triggers -----------------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.start()
        self.scheduler.add_job(
            self.request, IntervalTrigger(seconds=self.options.poll, timezone=UTC), args=["poll"],
            id="poll", coalesce=True, max_instances=1, misfire_grace_time=None,
        )  # fmt: skip
        self.request("start")

    def request(self, reason: str, keys: Collection[str] = ()) -> None:
        """Ask for a pass (now, or right after the one running)."""
        if self.stopping:
            return
        if keys:
            self.hooked.update(keys)
            self.schedule = self.schedule.due_now(keys)
        self.wanted = True
        log.debug("pass requested", reason=reason, tags=len(keys))
        if not self.running:
            self.running = True
            self._idle.clear()
            self.scheduler.add_job(
                self._pass_job, id="pass", replace_existing=True, coalesce=True,
                max_instances=1, misfire_grace_time=None,
            )  # fmt: skip

    def registry_pushed(self, images: Sequence[PushedImage]) -> list[str]:
        """Make the tags importing a pushed repository:tag due now and ask for a pass.

        Only scheduled tags follow their source (``importPolicy.scheduled``); followers of those
        tags move with them in the same pass.
        """
        keys = sorted(
            tag.key
            for tag in self.tags.values()
            if tag.scheduled
            and self.options.shard.owns(tag.namespace)
            and any(matches(image, tag.source) for image in images)
        )
        if keys:
            self.request("registry-hook", keys)
        return keys

    # --- the pass -----------------------------------------------------------------------------
    async def _pass_job(self) -> None:
        try:
            while self.wanted and not self.stopping:
                self.wanted = False
                await self._one_pass()
        finally:
            self.running = False
            self._idle.set()
            if not self.stopping:
                self._arm_due()

    async def _one_pass(self) -> None:
        snapshot = self.schedule
        self.hooked = set()
        started = time.monotonic()
        try:
            outcome = await _in_thread(lambda: self._pass_in_thread(snapshot))
        except StreamlockError as exc:
            self._pass_failed(exc, time.monotonic() - started)
            return
        except Exception as exc:  # never let one pass end the daemon
            log.exception("pass crashed")
            self._pass_failed(StreamlockError(f"internal error: {exc!r}"), 0.0)
            return
        self._pass_done(outcome, snapshot, time.monotonic() - started)

    def _pass_in_thread(self, snapshot: Schedule) -> _Outcome:
        """Clone or clean, fetch and reset, then the one-shot pass on what is due."""
        o = self.options
        if self.repo is None:
            self.repo = workdir.prepare(o.repo, o.workdir, o.branch)
            self.checks["clone"] = True
        repo = self.repo
        tip = workdir.sync(repo, o.branch)
        config = load_config(repo.root)
        self.checks["config"] = True
        self.ready_error = None
        tree = repo.tree(tip)
        if tree != self._cached_tree:
            streams = load_streams(repo.root, config).streams
            self.streams = streams
            self.tags = {
                k: t for k, t in watched_tags(streams).items() if o.shard.owns(t.namespace)
            }
            self._cached_tree = tree
        allowed = None if o.shard.count == 1 and o.shard.namespaces is None else {
            t.source for t in self.tags.values()
        }  # fmt: skip
        # Not truncated: due times are compared to it (lock times are written in whole seconds).
        now = datetime.now(UTC)
        options = PassOptions(
            now=now, last_checked=snapshot.last_checked, synced=(workdir.REMOTE, o.branch, tip)
        )

        def factory(cfg: Config, root: Path) -> Resolver:
            return _ShardResolver(cfg, root, self.metrics, allowed, o.auth)

        result = asyncio.run(run_pass(repo.root, factory, options))
        entries = {
            f"{lock.namespace}/{lock.name}:{tag}": entry
            for lock in result.plan.locks.values()
            for tag, entry in lock.tags.items()
        }
        holds: dict[str, str] = {}
        waiting: dict[str, str | None] = {}
        reverted = []
        for item in result.plan.statuses:
            if item.reason == status.HELD:
                holds[item.key] = item.message.removeprefix("held: ")
            if item.reason == status.REVERT_RESPECTED:
                reverted.append(item.key)
        looked_up = self._held_sources(config, repo.root, factory, result, entries, now, snapshot)
        waiting.update(looked_up)
        if reverted:
            # The digest that waits is the base B the person moved away from.
            bases = TrailerIndex(repo, config.git.author).bases()
            for key in reverted:
                entry = entries.get(key)
                if entry is not None:
                    identity = entry.source.identity(*key.split(":", 1)[0].split("/", 1))
                    waiting[key] = bases.get((key, identity))
        return _Outcome(
            result, config, dict(self.tags), now, entries, holds, waiting, frozenset(looked_up)
        )

    def _held_sources(
        self,
        config: Config,
        root: Path,
        factory: Callable[[Config, Path], Resolver],
        result: PassResult,
        entries: Mapping[str, Any],
        now: datetime,
        snapshot: Schedule,
    ) -> dict[str, str | None]:
        """What the sources of held scheduled tags serve, at their due times: ``/status`` then
        names the image a hold keeps out (the pass itself never looks a held tag up)."""
        interval = config.import_interval
        held = [
            self.tags[s.key]
            for s in result.plan.statuses
            if s.reason == status.HELD
            and s.key in self.tags
            and self.tags[s.key].scheduled
            and snapshot.is_due(s.key, now, interval)
        ]
        if not held:
            return {}
        requests = {
            t.key: ImportRequest(t.source, t.import_mode, config.platform, t.insecure) for t in held
        }
        observed = asyncio.run(factory(config, root).resolve_all(list(requests.values())))
        found: dict[str, str | None] = {}
        for key, request in requests.items():
            digest = getattr(observed.get(request.key), "digest", None)
            entry = entries.get(key)
            found[key] = digest if digest and (entry is None or entry.image != digest) else None
        return found

    def _pass_done(self, outcome: _Outcome, snapshot: Schedule, seconds: float) -> None:
        result, shard = outcome.result, self.options.shard
        self.config = outcome.config
        self.checks["config"] = True
        self.ready_error = None
        self.errors_in_a_row = 0
        self.revision = result.revision
        self.problems = [str(p) for p in result.problems]
        self.locks = dict(result.plan.locks)
        self.passes += 1
        interval = outcome.config.import_interval
        mine = [s for s in result.plan.statuses if shard.owns(s.namespace)]
        self.schedule = (
            snapshot.after_pass(mine, outcome.tags, outcome.now, interval, outcome.looked_up)
            .due_now(self.hooked)
        )  # fmt: skip
        states: dict[str, TagState] = {}
        for item in mine:
            previous = self.states.get(item.key)
            waiting = outcome.waiting.get(item.key)
            if item.reason == status.HELD and item.key not in outcome.looked_up and previous:
                waiting = previous.waiting_image  # a held tag's source is looked up when due
            states[item.key] = tag_state(
                item,
                previous,
                outcome.entries.get(item.key),
                outcome.now,
                waiting,
                outcome.holds.get(item.key),
            )
        self.states = states
        counts: dict[str, int] = {}
        for state in states.values():
            counts[state.state] = counts.get(state.state, 0) + 1
        self.metrics.set_tags(counts)
        failed = [s for s in mine if s.action == status.FAILED]
        outcome_label = "failed" if failed or result.problems else "success"
        self.metrics.passes.labels(outcome_label).inc()
        self.metrics.pass_duration.observe(seconds)
        self.metrics.last_success.set(time.time())
        if result.push_attempts > 1:
            self.metrics.push_conflicts.inc(result.push_attempts - 1)
        moved = [c for c in result.plan.changes if c.moved and c.new is not None]
        if result.pushed:
            self.metrics.bumps.inc(len(moved))
        checked = sum(1 for s in mine if s.reason != status.NOT_DUE)
        self.last_pass = {
            "result": outcome_label,
            "finished": outcome.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(seconds, 3),
        }
        log.info(
            "pass",
            result=outcome_label,
            tags=len(mine),
            checked=checked,
            bumped=len(moved),
            failed=len(failed),
            invalid=len(result.problems),
            commits=len(result.commits),
            pushed=result.pushed,
            revision=(result.revision or "")[:12],
            seconds=round(seconds, 3),
        )

    def _pass_failed(self, exc: StreamlockError, seconds: float) -> None:
        self.errors_in_a_row += 1
        self.metrics.passes.labels("error").inc()
        self.metrics.pass_duration.observe(seconds)
        if isinstance(exc, PushRejected):
            self.metrics.push_conflicts.inc()
        if isinstance(exc, GitError):
            self.metrics.git_errors.inc()
        if self.repo is None:
            self.ready_error = f"repository not usable: {redact(str(exc))}"
        elif isinstance(exc, InputError):
            self.checks["config"] = False
            self.ready_error = f"configuration not usable: {exc}"
        wait = min(self.options.poll, ERROR_RETRY_BASE * 2 ** (self.errors_in_a_row - 1))
        wait *= random.uniform(0.8, 1.2)
        self.last_pass = {"result": "error", "error": redact(str(exc)), "seconds": seconds}
        log.warning("pass failed", error=redact(str(exc)), retry_in=round(wait, 1))
        if not self.stopping:
            self.scheduler.add_job(
                self.request, DateTrigger(datetime.now(UTC) + timedelta(seconds=wait)),
                args=["retry"], id="retry", replace_existing=True, misfire_grace_time=None,
            )  # fmt: skip

    def _arm_due(self) -> None:
        """One job at the earliest due time of any scheduled tag (re-armed after every pass)."""
        if self.config is None:
            return
        when = self.schedule.next_due(self.tags.values(), self.config.import_interval)
        if when is None:
            with contextlib.suppress(Exception):
                self.scheduler.remove_job("due")
            return
        when = max(when, datetime.now(UTC) + timedelta(milliseconds=100))
        self.scheduler.add_job(
            self.request, DateTrigger(when), args=["due"], id="due", replace_existing=True,
            misfire_grace_time=None,
        )  # fmt: skip

    # --- views --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        interval = self.config.import_interval if self.config else 900.0
        doc = status_document(
            self.states,
            self.schedule,
            self.tags,
            interval,
            reconciling=self.running,
            revision=self.revision,
            problems=self.problems,
            last_pass=self.last_pass,
        )
        doc["ready"] = self.ready_error is None
        doc["shard"] = str(self.options.shard)
        return doc

    def alive(self) -> bool:
        return self.scheduler.running and not self._stopped.is_set()

    # --- stopping -----------------------------------------------------------------------------
    async def stop(self) -> None:
        """Take no more work, let the pass in flight finish (bounded), stop the scheduler."""
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping", pass_in_flight=self.running)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.options.stop_grace)
        if not self._idle.is_set():
            log.warning("abandoning the pass in flight; the next start cleans the workdir")
        self.scheduler.shutdown(wait=False)
        self._stopped.set()


async def _in_thread(func: Callable[[], _T]) -> _T:
    """Run ``func`` in a daemon thread: a pass abandoned at exit must not hold the process."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def target() -> None:
        value, error = None, None
        try:
            value = func()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: the pass was abandoned
            loop.call_soon_threadsafe(_settle, future, value, error)

    threading.Thread(target=target, name="streamlock-pass", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


async def serve(options: DaemonOptions) -> None:
    """Run until SIGTERM or SIGINT: HTTP and scheduler on this loop, then exit cleanly."""
    import uvicorn

    from reconciler.daemon.http import build_app

    daemon = Daemon(options)
    app = build_app(daemon, ui=options.ui)

    class _Server(uvicorn.Server):
        # Our handlers, not uvicorn's: it re-raises the signal after shutdown (exit status
        # 143); we finish the pass in flight first and exit 0.
        def capture_signals(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()

    async def shutdown(sig: signal.Signals) -> None:
        log.info("signal received", signal=sig.name)
        await daemon.stop()
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: asyncio.ensure_future(shutdown(s)))
    with workdir.hold(options.workdir):
        daemon.start()
        log.info(
            "daemon started",
            repo=redact(options.repo),
            branch=options.branch,
            listen=f"{options.host}:{options.port}",
            poll=options.poll,
            shard=str(options.shard),
        )
        try:
            await server.serve()
        finally:
            if not daemon.stopping:
                await daemon.stop()
    log.info("stopped")
