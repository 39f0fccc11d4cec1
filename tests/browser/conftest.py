"""The browser tier: the gallery page in a real Chromium (Debian's), driven by Playwright.

Playwright cannot download its own browsers here, so it drives the system's ``chromium``
(``apt-get install chromium``; ``.ci/run`` installs it). Without Chromium or Playwright the
tier is skipped with the reason in the summary; in CI (``CI=true``) it fails instead.
Screenshots are kept in ``test-artifacts/gallery/`` (git ignores it), named in the summary.

The browser reaches 127.0.0.1 only: every other request is aborted and recorded, and the
tests assert that there was none (the page works with the network cut off).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import tiers
from tests.conftest import LocalDeployment
from tests.gallery_support import Gallery, running_gallery

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "gallery"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
INSTALL_HINT = "apt-get install chromium, and pip install playwright (the dev extra)"

_summary = tiers.section("browser tier (gallery page)")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed"
    if shutil.which("chromium") is None:
        return "no chromium on PATH"
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """One Chromium for the session (Debian's, through Playwright)."""
    missing = _missing()
    if missing:
        if _in_ci():
            message = f"browser tier FAILED: {missing} ({INSTALL_HINT}); CI=true needs it"
            _summary.append(message)
            pytest.fail(message, pytrace=False)
        _summary.append(f"browser tier skipped: {missing} ({INSTALL_HINT})")
        pytest.skip(f"browser tier skipped: {missing} ({INSTALL_HINT})")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        _summary.append(f"browser tier: Chromium {browser.version} ({shutil.which('chromium')})")
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def gallery(chromium, local_stack: LocalDeployment) -> Iterator[Gallery]:
    """``imgup gallery`` on the module's local stack, as a user runs it."""
    with running_gallery(local_stack) as running:
        yield running


@dataclass
class Browsing:
    """A browser tab on the gallery, with what it asked of the outside world."""

    page: object
    offsite: list[str] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def open_gallery(chromium, gallery: Gallery, viewport: dict[str, int] = DESKTOP) -> Browsing:
    context = chromium.new_context(viewport=viewport, service_workers="block", accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    seen = Browsing(page)

    def guard(route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("blob:", "data:")):
            parts = urlsplit(url)
            if parts.path.startswith("/_api/"):  # /_api/<region>/<api>/<stage>/<route>
                route_path = "/" + parts.path.split("/", 5)[-1] + (f"?{parts.query}" if parts.query else "")
                seen.api_calls.append(f"{route.request.method} {route_path}")
            route.continue_()
        else:
            seen.offsite.append(url)
            route.abort()

    context.route("**/*", guard)
    page.on("console", lambda message: message.type == "error" and seen.console_errors.append(message.text))
    page.goto(gallery.link)
    wait_until_listed(page)
    return seen


def wait_until_listed(page) -> None:
    """Until the first page of the gallery is shown (or the page says why not)."""
    page.wait_for_function(
        "() => ['idle', 'empty', 'error'].includes(document.querySelector('#state').dataset.kind)"
    )


@pytest.fixture
def tab(chromium, gallery: Gallery) -> Iterator[Browsing]:
    seen = open_gallery(chromium, gallery)
    try:
        yield seen
    finally:
        seen.page.context.close()


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    if full_page:  # lazy images load as they come into view: bring each in, then back up
        page.evaluate(
            "async () => { for (const img of document.querySelectorAll('#grid img')) {"
            " img.scrollIntoView(); await new Promise(r => setTimeout(r, 20)); } window.scrollTo(0, 0); }"
        )
        page.wait_for_function(
            "() => [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    _summary.append(f"screenshot: {path.relative_to(ROOT)}")
    return path
