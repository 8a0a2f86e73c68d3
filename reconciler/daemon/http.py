"""The daemon's HTTP face (starlette): probes, metrics, status and the webhooks.

``/healthz`` and ``/livez`` say the loop and the scheduler are alive and depend on nothing
else; ``/readyz`` says the first clone and the config load are done (``?verbose`` lists the
checks); ``/metrics`` is Prometheus text; ``/status`` the per-tag JSON; ``/ui/`` the web view
(``reconciler.web.app``) unless ``--no-ui``. Hooks authenticate
before they read more than the size cap, answer 401 to a bad or missing credential and do
nothing then, and answer 202 once a pass is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from reconciler.daemon import hooks
from reconciler.daemon.metrics import CONTENT_TYPE, Metrics
from reconciler.errors import InputError

if TYPE_CHECKING:
    from reconciler.daemon.service import Daemon

log = structlog.get_logger("streamlock.daemon")


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int = hooks.MAX_BODY) -> bytes:
    """The request body, refusing more than ``limit`` bytes (whatever Content-Length says)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(daemon: Daemon, *, ui: bool = False) -> Starlette:
    """The daemon's routes; ``ui`` adds the web view under ``/ui/``."""
    metrics = daemon.metrics

    async def healthz(request: Request) -> Response:
        if daemon.alive():
            return PlainTextResponse("ok\n")
        return PlainTextResponse("scheduler stopped\n", status_code=503)

    async def readyz(request: Request) -> Response:
        ready = daemon.ready_error is None
        code = 200 if ready else 503
        if "verbose" in request.query_params:
            lines = [f"[{'+' if ok else '-'}]{name} {'ok' if ok else 'failed'}"
                     for name, ok in daemon.checks.items()]  # fmt: skip
            if daemon.ready_error:
                lines.append(f"reason: {daemon.ready_error}")
            lines.append("readyz check passed" if ready else "readyz check failed")
            return PlainTextResponse("\n".join(lines) + "\n", status_code=code)
        return PlainTextResponse("ok\n" if ready else f"{daemon.ready_error}\n", status_code=code)

    async def metrics_view(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def status_view(request: Request) -> Response:
        return JSONResponse(daemon.status())

    async def registry_hook(request: Request) -> Response:
        token = daemon.options.registry_token
        if not token:
            return _refuse("registry", 404, "registry hook not configured", metrics)
        if not hooks.bearer_ok(request.headers.get("authorization"), token):
            return _refuse("registry", 401, "bad or missing bearer token", metrics)
        if daemon.stopping:
            return _refuse("registry", 503, "stopping", metrics)
        try:
            body = await _body(request)
            images = hooks.parse_registry_payload(body)
        except _TooLarge:
            return _refuse("registry", 413, "body too large", metrics)
        except InputError as exc:
            return _refuse("registry", 400, str(exc), metrics)
        keys = daemon.registry_pushed(images)
        outcome = "matched" if keys else ("unmatched" if images else "no-tag")
        metrics.hooks.labels("registry", outcome).inc()
        if keys:
            log.info("registry hook", pushed=[str(i) for i in images][:10], tags=len(keys))
        return JSONResponse({"pushed": [str(i) for i in images], "tags": keys}, status_code=202)

    async def git_hook(request: Request) -> Response:
        secret = daemon.options.git_secret
        if not secret:
            return _refuse("git", 404, "git hook not configured", metrics)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = await _body(request)
        except _TooLarge:
            return _refuse("git", 413, "body too large", metrics)
        if "x-gitlab-token" in headers:
            ok = hooks.gitlab_token_ok(headers.get("x-gitlab-token"), secret)
        else:
            ok = hooks.github_signature_ok(body, headers.get("x-hub-signature-256"), secret)
        if not ok:
            return _refuse("git", 401, "bad or missing signature", metrics)
        if daemon.stopping:
            return _refuse("git", 503, "stopping", metrics)
        try:
            push = hooks.parse_git_push(body, headers)
        except InputError as exc:
            return _refuse("git", 400, str(exc), metrics)
        if push is None:
            metrics.hooks.labels("git", "ignored").inc()
            return JSONResponse({"ignored": "not a push event"}, status_code=202)
        if push.delivery and not daemon.replays.first_time(push.delivery):
            metrics.hooks.labels("git", "replayed").inc()
            return JSONResponse({"ignored": "delivery already seen"}, status_code=202)
        if push.ref is not None and push.ref != f"refs/heads/{daemon.options.branch}":
            metrics.hooks.labels("git", "ignored").inc()
            return JSONResponse({"ignored": f"push to {push.ref}"}, status_code=202)
        daemon.request("git-hook")
        metrics.hooks.labels("git", "accepted").inc()
        log.info("git hook", ref=push.ref)
        return JSONResponse({"pass": "requested"}, status_code=202)

    routes = [
        Route("/healthz", healthz),
        Route("/livez", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_view),
        Route("/status", status_view),
        Route("/hooks/registry", registry_hook, methods=["POST"]),
        Route("/hooks/git", git_hook, methods=["POST"]),
    ]
    if ui:
        from reconciler.web.app import build_ui

        async def to_ui(request: Request) -> Response:
            return RedirectResponse("/ui/", status_code=308)

        routes += [Route("/ui", to_ui), Mount("/ui", app=build_ui(daemon))]
    return Starlette(routes=routes)


def _refuse(kind: str, code: int, message: str, metrics: Metrics) -> Response:
    metrics.hooks.labels(kind, str(code)).inc()
    log.info("hook refused", hook=kind, code=code, reason=message)
    return JSONResponse({"error": message}, status_code=code)
