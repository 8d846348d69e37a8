"""Fixtures that drive the sign-in page in Debian's Chromium, against the real local stack.

Per pytest session (per xdist worker): the `exchange_code`, `account_api` and `disconnect_user`
processes (functions-framework, exactly as deployed) and a page server on free ports, serving a
temporary copy of `static_site/` with its own `config.js` (the developer's `make dev` config is
left alone) and forwarding `/api/*` to the functions as Firebase Hosting does. A second page
server is "an app on another origin": it calls the exchange function cross-origin and keeps no
session.
Per test module: one Chromium. Per test: a fresh Firestore, a reset local Google
(`function_env`, `google` from tests/conftest.py), a new browser context, and a screenshot of
the final state in tests/artifacts/screenshots/.
"""

from __future__ import annotations

import json
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


ACCOUNT_SA = "offline-access-account@demo-test.iam.gserviceaccount.com"
# The page's branding in the browser tests (the branded test writes its own).
TEST_BRAND = {"appName": "Offline Access Demo"}


# The functions that open tokens (they revoke grants); the others only seal.
OPENING_FUNCTIONS = ("disconnect_user", "run_offline_job")


@dataclass
class BrowserStack:
    """The page servers and the functions, shared by the browser tests of a session."""

    site_dir: Path
    site: StaticSite
    other_site: StaticSite
    other_site_dir: Path
    env: dict[str, str]
    exchange_port: int
    log_path: Path
    google_url: str
    functions: dict[str, FunctionServer] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    account_env: dict[str, str] = field(default_factory=dict, repr=False)
    google: GoogleControl | None = field(default=None, repr=False)

    @property
    def page_url(self) -> str:
        return self.site.url

    @property
    def exchange_url(self) -> str:
        """Where the page sends the code: its own origin, forwarded to the function."""
        return f"{self.site.url}/api/exchange"

    @property
    def direct_exchange_url(self) -> str:
        return f"http://127.0.0.1:{self.exchange_port}/"

    @property
    def gis_script_url(self) -> str:
        return f"{self.google_url}/gsi/client"

    @classmethod
    def start(cls, function_env: dict[str, str], google_server, workdir: Path) -> BrowserStack:
        google_url = google_server.url
        site_dir, other_dir = workdir / "site", workdir / "other-site"
        for target in (site_dir, other_dir):
            shutil.copytree(SITE_DIR, target, ignore=shutil.ignore_patterns("config.js"))
            for item in LEGACY_SAMPLE.iterdir():
                shutil.copy(item, target / item.name)
        ports = {name: free_port() for name in ("exchange_code", "account_api", "disconnect_user")}
        gis_script_url = f"{google_url}/gsi/client"
        direct = f"http://127.0.0.1:{ports['exchange_code']}/"
        site = StaticSite(exchange_url="/api/exchange", gis_script_url=gis_script_url,
                          site_dir=site_dir, port=0, rewrites={
                              "/api/exchange": f"http://127.0.0.1:{ports['exchange_code']}",
                              "/api/": f"http://127.0.0.1:{ports['account_api']}"})
        other = StaticSite(exchange_url=direct, gis_script_url=gis_script_url,
                           site_dir=other_dir, port=0)
        key = workdir / "account-sa-key.json"
        key.write_text(json.dumps(google_server.service_account_key(ACCOUNT_SA)))
        env = {**function_env, "ALLOWED_ORIGINS": f"{site.url},{other.url}",
               "DISCONNECT_FUNCTION_URL": f"http://127.0.0.1:{ports['disconnect_user']}/",
               "JOB_SCHEDULE_PERIOD_SECONDS": "900"}
        write_config(site_dir, client_id=CLIENT_ID, exchange_url="/api/exchange",
                     account_api_url="/api", scopes=SCOPES, gis_script_url=gis_script_url,
                     brand=TEST_BRAND)
        write_config(other_dir, client_id=CLIENT_ID, exchange_url=direct, scopes=SCOPES,
                     gis_script_url=gis_script_url, brand=TEST_BRAND)
        stack = cls(site_dir=site_dir, site=site, other_site=other, other_site_dir=other_dir,
                    env=env, exchange_port=ports["exchange_code"],
                    log_path=workdir / "functions.log", google_url=google_url, ports=ports,
                    account_env={"GOOGLE_APPLICATION_CREDENTIALS": str(key)})
        site.start()
        other.start()
        for name in ports:
            stack.start_function(name)
        return stack

    def start_function(self, name: str) -> None:
        """Starts (or restarts, on the same port) one function's process."""
        running = self.functions.get(name)
        if running is not None and running.popen.poll() is None:
            return
        extra = self.account_env if name == "account_api" else {}
        # As deployed: the public functions seal with the public key and hold no key that opens.
        base = self.env if name in OPENING_FUNCTIONS else public_only(self.env)
        self.functions[name] = FunctionServer(name, {**base, **extra}, port=self.ports[name],
                                              output=self.log_path.open("a"))

    def start_exchange(self) -> None:
        self.start_function("exchange_code")

    def stop_function(self, name: str) -> None:
        running = self.functions.pop(name, None)
        if running is not None:
            running.stop()

    def stop_exchange(self) -> None:
        self.stop_function("exchange_code")

    def exchange_running(self) -> bool:
        running = self.functions.get("exchange_code")
        return running is not None and running.popen.poll() is None

    def close(self) -> None:
        for name in list(self.functions):
            self.stop_function(name)
        self.site.stop()
        self.other_site.stop()


@pytest.fixture(scope="session")
def _stack_holder():
    holder: dict[str, BrowserStack] = {}
    yield holder
    if "stack" in holder:
        holder["stack"].close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_call_failed = report.failed
    return report


@pytest.fixture
def stack(function_env, google, google_server, _stack_holder, tmp_path_factory, request):
    """The running page and exchange function, with fresh Firestore and local Google state.

    When the test fails, the functions' log lines written during it are printed, so the report
    says what the server answered (the log never holds a secret)."""
    current = _stack_holder.get("stack")
    if current is None:
        current = BrowserStack.start(function_env, google_server,
                                     tmp_path_factory.mktemp("browser-stack"))
        _stack_holder["stack"] = current
    else:
        for name in current.ports:  # a test may have stopped one
            current.start_function(name)
    # The test pages' origins are JavaScript origins of the OAuth client, like localhost:8080.
    google.client(CLIENT_ID, javascript_origins=[PAGE_ORIGIN, current.page_url,
                                                 current.other_site.url])
    current.google = google
    logged_from = current.log_path.stat().st_size if current.log_path.exists() else 0
    yield current
    if getattr(request.node, "browser_call_failed", False) and current.log_path.exists():
        with current.log_path.open(errors="replace") as log:
            log.seek(logged_from)
            print("The functions' log during this test:\n" + log.read()[-20_000:])


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

    def make(viewport: dict | None = None, path: str = "/", site: str | None = None) -> Page:
        context = browser.new_context(viewport=viewport or DESKTOP, device_scale_factor=1)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        problems = PageProblems()
        page.on("console", problems.console)
        page.on("pageerror", problems.error)
        opened.append((page, problems))
        page.goto((site or stack.page_url) + path)
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
