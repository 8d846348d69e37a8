"""Fixtures that drive the sign-in page in Debian's Chromium, against the real local stack.

Per pytest session (per xdist worker): one `exchange_code` process (functions-framework,
exactly as deployed) and one page server on free ports, serving a temporary copy of
`static_site/` with its own `config.js` (the developer's `make dev` config is left alone).
Per test module: one Chromium. Per test: a fresh Firestore, a reset local Google
(`function_env`, `google` from tests/conftest.py), a new browser context, and a screenshot of
the final state in tests/artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.cloud import firestore
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from localdev.local_google.control import GoogleControl
from localdev.processes import REPO, FunctionServer, free_port
from localdev.site_config import write_config
from localdev.stack_secrets import public_only
from localdev.static_server import SITE_DIR, StaticSite
from tests.browser.flows import expect_signed_out
from tests.stack_values import CLIENT_ID, PAGE_ORIGIN, SCOPES

CHROMIUM = Path("/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = REPO / "tests" / "artifacts" / "screenshots"
# A page that sends the code exactly as Google's original (gapi.auth2 + jQuery) sample did.
LEGACY_SAMPLE = Path(__file__).resolve().parent / "legacy_sample"
DESKTOP = {"width": 960, "height": 760}


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


# Module scope, not session: the Sync API allows one Playwright per thread at a time, and other
# test modules (tests/localdev/) start their own; pytest ends a module's fixtures before the next
# module's tests run, so the two never overlap in one xdist worker.
@pytest.fixture(scope="module")
def browser() -> Browser:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}). Install it with `make chromium` "
            "(Debian's package: apt-get install chromium); `make test` does this for you.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class BrowserStack:
    """The page server and the exchange function, shared by the browser tests of a session."""

    site_dir: Path
    site: StaticSite
    env: dict[str, str]
    exchange_port: int
    log_path: Path
    google_url: str
    exchange: FunctionServer | None = None
    google: GoogleControl | None = field(default=None, repr=False)

    @property
    def page_url(self) -> str:
        return self.site.url

    @property
    def exchange_url(self) -> str:
        return f"http://127.0.0.1:{self.exchange_port}/"

    @property
    def gis_script_url(self) -> str:
        return f"{self.google_url}/gsi/client"

    @classmethod
    def start(cls, function_env: dict[str, str], google_url: str, workdir: Path) -> BrowserStack:
        site_dir = workdir / "site"
        shutil.copytree(SITE_DIR, site_dir, ignore=shutil.ignore_patterns("config.js"))
        for item in LEGACY_SAMPLE.iterdir():
            shutil.copy(item, site_dir / item.name)
        exchange_port = free_port()
        gis_script_url = f"{google_url}/gsi/client"
        exchange_url = f"http://127.0.0.1:{exchange_port}/"
        site = StaticSite(exchange_url=exchange_url, gis_script_url=gis_script_url,
                          site_dir=site_dir, port=0)
        # As deployed: the exchange seals with the public key and holds no key that opens.
        env = {**public_only(function_env), "ALLOWED_ORIGINS": site.url}
        write_config(site_dir, client_id=CLIENT_ID, exchange_url=exchange_url, scopes=SCOPES,
                     gis_script_url=gis_script_url)
        stack = cls(site_dir=site_dir, site=site, env=env, exchange_port=exchange_port,
                    log_path=workdir / "exchange_code.log", google_url=google_url)
        site.start()
        stack.start_exchange()
        return stack

    def start_exchange(self) -> None:
        """Starts (or restarts, on the same port) the exchange function's process."""
        if self.exchange_running():
            return
        self.exchange = FunctionServer("exchange_code", self.env, port=self.exchange_port,
                                       output=self.log_path.open("a"))

    def stop_exchange(self) -> None:
        if self.exchange is not None:
            self.exchange.stop()
            self.exchange = None

    def exchange_running(self) -> bool:
        return self.exchange is not None and self.exchange.popen.poll() is None

    def close(self) -> None:
        self.stop_exchange()
        self.site.stop()


@pytest.fixture(scope="session")
def _stack_holder():
    holder: dict[str, BrowserStack] = {}
    yield holder
    if "stack" in holder:
        holder["stack"].close()


@pytest.fixture
def stack(function_env, google, google_server, _stack_holder, tmp_path_factory) -> BrowserStack:
    """The running page and exchange function, with fresh Firestore and local Google state."""
    current = _stack_holder.get("stack")
    if current is None:
        current = BrowserStack.start(function_env, google_server.url,
                                     tmp_path_factory.mktemp("browser-stack"))
        _stack_holder["stack"] = current
    else:
        current.start_exchange()  # a test may have stopped it
    # The test page's origin is a JavaScript origin of the OAuth client, like localhost:8080.
    google.client(CLIENT_ID, javascript_origins=[PAGE_ORIGIN, current.page_url])
    current.google = google
    return current


@pytest.fixture(scope="session")
def firestore_client(project, firestore_emulator) -> firestore.Client:
    # FIRESTORE_EMULATOR_HOST is set in this process by tests/conftest.py.
    return firestore.Client(project=project)


class PageProblems:
    """Console errors and uncaught exceptions of a page, and CSP violations among them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(message.text)

    def error(self, exc: Exception) -> None:
        self.messages.append(f"uncaught: {exc}")

    @property
    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]

    @property
    def uncaught(self) -> list[str]:
        return [m for m in self.messages if m.startswith("uncaught:")]


@pytest.fixture
def new_page(browser, stack, request):
    """Opens pages in a fresh context; each is checked for CSP violations and screenshotted."""
    contexts = []
    opened: list[tuple[Page, PageProblems]] = []

    def make(viewport: dict | None = None, path: str = "/") -> Page:
        context = browser.new_context(viewport=viewport or DESKTOP, device_scale_factor=1)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        problems = PageProblems()
        page.on("console", problems.console)
        page.on("pageerror", problems.error)
        opened.append((page, problems))
        page.goto(stack.page_url + path)
        return page

    yield make

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for index, (page, _) in enumerate(opened):
        suffix = "" if index == 0 else f"-{index + 1}"
        if not page.is_closed():
            page.screenshot(path=SCREENSHOTS / f"{request.node.name}{suffix}.png", full_page=True)
    for context in contexts:
        context.close()
    for _, problems in opened:
        assert not problems.csp_violations, f"CSP violations: {problems.csp_violations}"
        assert not problems.uncaught, f"uncaught errors: {problems.uncaught}"


@pytest.fixture
def page(new_page) -> Page:
    """The sign-in page, loaded and ready (signed out)."""
    opened = new_page()
    expect_signed_out(opened)
    return opened
