"""A real browser (Debian's chromium and chromedriver, driven by Selenium) against the web view.

One scenario per module: the example repository on the session registry (under a prefix of its
own), reconciled by the real CLI, plus a stream with hostile labels, a held tag and a tag whose
image does not exist, and a bump of ``shop/app:1.1`` reverted by ``git revert`` while the
registry still serves it. The same repository is then served by ``streamlock run`` (``/ui/``)
and written by ``streamlock report --html``; the tests visit both with one browser session.

Without chromium or chromedriver the tests fail, naming the packages (``make test`` installs
them first): a run must never pass without having driven the browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.daemon import DaemonProcess, wait_for
from tests.fixtures.demo import AMD64, EXAMPLE_DIR, EXAMPLE_HOST, EXAMPLE_IMAGES, ExampleImage
from tests.fixtures.gitremote import ConfigRepo, make_config_repo
from tests.fixtures.images import Seeder, join_platform
from tests.fixtures.registry_server import RegistryServer
from tests.fixtures.tools import require

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "webui"
SECRET = "hunter2-registry-password-7f3a"
COMMIT_URL = "https://forge.example/org/config/commit/{sha}"
EDIT_URL = "https://forge.example/org/config/edit/main/{path}#L{line}"
# The labels a lock keeps (version, revision, source), each carrying an attack.
HOSTILE_LABELS = {
    "org.opencontainers.image.version": "<script>window.__pwned=1</script>",
    "org.opencontainers.image.source": '"><img src=x onerror="window.__pwned=2">',
    "org.opencontainers.image.revision": "javascript:window.__pwned=3 '><svg onload=alert(4)>",
}
HOLD_REASON = "<b>frozen</b> for the audit\"'><script>window.__pwned=5</script>"


def _browser_binaries() -> tuple[str, str]:
    return require("chromium", "chromium"), require("chromedriver", "chromium-driver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium session for the module, with the console log kept."""
    chromium, driver_path = _browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
        "--allow-file-access-from-files",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _push(seeder: Seeder, image: ExampleImage) -> str:
    """Push an example image under PREFIX with the example's own salt (so the digest the
    example pins is the one served)."""
    repo = f"{PREFIX}/{image.repo}"
    if len(image.platforms) == 1:
        return seeder.push_image(
            repo,
            image.tag,
            platform=join_platform(*image.platforms[0]),
            created=image.created,
            labels=image.labels,
            salt=image.salt,
        )
    digest, _ = seeder.push_index(
        repo,
        image.tag,
        image.platforms,
        created=image.created,
        labels=image.labels,
        salt=image.salt,
    )
    return digest


def _files(host: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(EXAMPLE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            data = path.read_bytes()
            data = data.replace(f"{EXAMPLE_HOST}/".encode(), f"{host}/{PREFIX}/".encode())
            files[path.relative_to(EXAMPLE_DIR).as_posix()] = data.replace(
                EXAMPLE_HOST.encode(), host.encode()
            )
    hold = HOLD_REASON.replace("\\", "\\\\").replace('"', '\\"')
    hostile = f"{{kind: DockerImage, name: {host}/{PREFIX}/shop/hostile:1.0}}"
    missing = f"{{kind: DockerImage, name: {host}/{PREFIX}/shop/missing:1.0}}"
    files["streams/shop/hostile.yaml"] = (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        "metadata:\n  name: hostile\n  namespace: shop\nspec:\n  tags:\n"
        f"  - name: labels\n    from: {hostile}\n"
        f"  - name: frozen\n    from: {hostile}\n"
        f'    annotations: {{streamlock.dev/hold: "{hold}"}}\n'
        f"  - name: broken\n    from: {missing}\n"
    ).encode()
    return files


def streamlock(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@dataclass(frozen=True)
class Scenario:
    repo: ConfigRepo
    registry: RegistryServer
    reverted: str  # the digest shop/app:1.1 waits on after the revert
    kept: str  # the digest the revert went back to
    report: Path  # the written report
    auth_config: Path


@pytest.fixture(scope="module")
def scenario(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("web-scenario")
    with Seeder.for_server(registry) as seeder:
        for image in EXAMPLE_IMAGES:
            _push(seeder, image)
        seeder.push_image(
            f"{PREFIX}/shop/hostile",
            "1.0",
            labels=HOSTILE_LABELS,
            salt="hostile",
            platform="linux/amd64",
        )
        repo = make_config_repo(root / "config", _files(registry.host))
        first = streamlock("reconcile", "--repo", str(repo.work), cwd=repo.work)
        assert first.returncode == 1, first.stderr  # shop/hostile:broken cannot be imported
        kept = _lock_image(repo, "shop/app", "1.1")
        new = seeder.push_image(
            f"{PREFIX}/shop/app", "1.1", platform=join_platform(*AMD64), salt="webui-bump"
        )
    second = streamlock("reconcile", "--repo", str(repo.work), cwd=repo.work)
    assert _lock_image(repo, "shop/app", "1.1") == new, second.stderr
    bump = repo.git("log", "--format=%H", "-n1", "--grep=^shop/app: ", "HEAD").strip()
    repo.git("revert", "--no-edit", bump)
    repo.git("push", "--quiet", "origin", "HEAD")
    third = streamlock("reconcile", "--repo", str(repo.work), cwd=repo.work)
    assert _lock_image(repo, "shop/app", "1.1") == kept, third.stderr
    auth = root / "auth.yaml"
    auth.write_text(
        f"registries:\n  - host: {registry.host}\n"
        "    auth: {env: {username: WEBUI_USER, password: WEBUI_PASSWORD}}\n"
    )
    report = root / "report"
    written = streamlock(
        "report", "--repo", str(repo.work), "--html", str(report),
        "--commit-url", COMMIT_URL, "--edit-url", EDIT_URL,
        cwd=repo.work,
        env={"WEBUI_USER": "webui", "WEBUI_PASSWORD": SECRET, "STREAMLOCK_AUTH_CONFIG": str(auth)},
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    return Scenario(repo, registry, new, kept, report, auth)


def _lock_image(repo: ConfigRepo, stream: str, tag: str) -> str | None:
    from reconciler.lockfile import loads

    path = repo.work / "locks" / f"{stream}.lock.yaml"
    entry = loads(path.read_bytes()).tags.get(tag) if path.is_file() else None
    return entry.image if entry else None


@pytest.fixture(scope="module")
def daemon(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """``streamlock run`` on the scenario's remote, after its first pass."""
    workdir = tmp_path_factory.mktemp("web-daemon") / "wd"
    process = DaemonProcess(
        scenario.repo.remote,
        workdir,
        poll="600s",
        args=["--commit-url", COMMIT_URL, "--edit-url", EDIT_URL],
        env={
            "STREAMLOCK_AUTH_CONFIG": str(scenario.auth_config),
            "WEBUI_USER": "webui",
            "WEBUI_PASSWORD": SECRET,
        },
    )
    try:
        process.start()
        wait_for(lambda: (process.status().get("lastPass") or {}).get("finished"), 60)
        yield process
    finally:
        process.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each visited page's screenshot goes (the test's output folder)."""
    return tmp_path_factory.mktemp("screenshots")
