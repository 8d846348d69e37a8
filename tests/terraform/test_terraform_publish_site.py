"""terraform/scripts/publish_site.py against a fake Firebase Hosting REST API.

The script runs as `terraform apply` runs it (`python3 publish_site.py`, input in the
environment). The fake keeps every request, so the tests check the deploy protocol: create a
version with the configuration, populateFiles with gzip SHA-256 hashes, upload only what is
asked for, finalize, release.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "terraform" / "scripts" / "publish_site.py"
TOKEN = "ya29.test-access-token-canary"
SITE = "demo-project-signin"
VERSION = f"sites/{SITE}/versions/v0001"
HOSTING_CONFIG = {
    "rewrites": [{"glob": "/api/exchange", "run": {"serviceId": "offline-access-exchange",
                                                    "region": "europe-west1"}}],
    "headers": [{"glob": "**", "headers": {"X-Content-Type-Options": "nosniff"}}],
}
CONFIG_JS = 'window.APP_CONFIG = Object.freeze({"exchange_url":"/api/exchange"});\n'


class FakeHosting:
    """Records requests; answers like firebasehosting.googleapis.com (v1beta1)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.uploads: dict[str, bytes] = {}
        self.cached: set[str] = set()  # hashes Hosting "already has"
        self.failures: dict[str, list[int]] = {}  # step -> statuses to answer first
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                record = {"method": self.command, "path": url.path,
                          "query": dict(urllib.parse.parse_qsl(url.query)),
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body}
                fake.requests.append(record)
                status, answer = fake.answer(record)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def step(self, record: dict) -> str:
        path = record["path"]
        if path.startswith("/upload/"):
            return "upload"
        if path.endswith(":populateFiles"):
            return "populateFiles"
        if path.endswith("/releases"):
            return "release"
        if record["method"] == "PATCH":
            return "finalize"
        return "create"

    def answer(self, record: dict) -> tuple[int, dict]:
        step = self.step(record)
        pending = self.failures.get(step)
        if pending:
            status = pending.pop(0)
            return status, {"error": {"code": status, "status": "PERMISSION_DENIED"
                                      if status == 403 else "UNAVAILABLE",
                                      "message": f"injected {status}"}}
        if step == "create":
            return 200, {"name": VERSION, "status": "CREATED"}
        if step == "populateFiles":
            files = json.loads(record["body"])["files"]
            required = sorted(set(files.values()) - self.cached)
            return 200, {"uploadRequiredHashes": required,
                         "uploadUrl": f"{self.url}/upload/{VERSION}/files"}
        if step == "upload":
            self.uploads[record["path"].rsplit("/", 1)[1]] = record["body"]
            return 200, {}
        if step == "finalize":
            return 200, {"name": VERSION, "status": "FINALIZED"}
        return 200, {"name": f"sites/{SITE}/releases/r0001", "version": {"name": VERSION}}

    def steps(self) -> list[str]:
        return [self.step(r) for r in self.requests]


@pytest.fixture
def hosting():
    fake = FakeHosting()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "static_site"
    (root / "img").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><script src=config.js></script>\n")
    (root / "app.js").write_text("console.log('sign in');\n")
    (root / "style.css").write_text("body { margin: 0 }\n")
    (root / "img" / "logo.svg").write_text("<svg/>\n")
    # Not published: a local development config, docs, hidden files.
    (root / "config.js").write_text("window.APP_CONFIG = {exchange_url: 'http://localhost:8081'};\n")
    (root / "README.md").write_text("notes\n")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


def run_script(hosting: FakeHosting, site: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "PUBLISH_PROJECT": "demo-project",
        "PUBLISH_SITE": SITE,
        "PUBLISH_SOURCE_DIR": str(site),
        "PUBLISH_CONFIG_JS": CONFIG_JS,
        "PUBLISH_HOSTING_CONFIG": json.dumps(HOSTING_CONFIG),
        "PUBLISH_MESSAGE": "test release",
        "FIREBASE_HOSTING_API": hosting.url,
        "PUBLISH_ACCESS_TOKEN": TOKEN,
    }
    env.update(overrides)
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def gz_hash(content: bytes) -> str:
    return hashlib.sha256(gzip.compress(content, compresslevel=9, mtime=0)).hexdigest()


def test_publishes_the_page_with_the_generated_config(hosting, site):
    hosting.cached = {gz_hash(b"body { margin: 0 }\n")}  # already on Hosting: not uploaded

    result = run_script(hosting, site)

    assert result.returncode == 0, result.stderr
    assert hosting.steps() == ["create", "populateFiles", "upload", "upload", "upload", "upload",
                               "finalize", "release"]
    create, populate = hosting.requests[0], hosting.requests[1]
    assert create["method"] == "POST" and create["path"] == f"/v1beta1/sites/{SITE}/versions"
    assert json.loads(create["body"])["config"] == HOSTING_CONFIG

    files = json.loads(populate["body"])["files"]
    assert populate["path"] == f"/v1beta1/{VERSION}:populateFiles"
    assert set(files) == {"/index.html", "/app.js", "/style.css", "/img/logo.svg", "/config.js"}
    for path, digest in files.items():
        content = CONFIG_JS.encode() if path == "/config.js" else (site / path[1:]).read_bytes()
        assert digest == gz_hash(content), path
    # Only what Hosting asked for is uploaded, gzipped; config.js is the generated one.
    assert set(hosting.uploads) == set(files.values()) - hosting.cached
    assert gzip.decompress(hosting.uploads[files["/config.js"]]).decode() == CONFIG_JS

    finalize, release = hosting.requests[-2], hosting.requests[-1]
    assert finalize["method"] == "PATCH" and finalize["path"] == f"/v1beta1/{VERSION}"
    assert finalize["query"] == {"update_mask": "status"}
    assert json.loads(finalize["body"]) == {"status": "FINALIZED"}
    assert release["path"] == f"/v1beta1/sites/{SITE}/releases"
    assert release["query"] == {"versionName": VERSION}
    assert json.loads(release["body"]) == {"message": "test release"}

    for request in hosting.requests:
        assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert request["headers"]["x-goog-user-project"] == "demo-project"
    assert TOKEN not in result.stdout + result.stderr
    assert "released" in result.stdout


def test_refuses_a_site_without_index_html(hosting, site):
    (site / "index.html").unlink()

    result = run_script(hosting, site)

    assert result.returncode == 1
    assert "index.html not found" in result.stderr
    assert hosting.requests == []


def test_reports_an_api_refusal_without_leaking_the_token(hosting, site):
    hosting.failures["create"] = [403]

    result = run_script(hosting, site)

    assert result.returncode == 1
    assert "create version failed: HTTP 403 PERMISSION_DENIED injected 403" in result.stderr
    assert hosting.steps() == ["create"]  # no retry of a refusal, nothing released
    assert TOKEN not in result.stdout + result.stderr


def test_rejects_a_configuration_that_is_not_json(hosting, site):
    result = run_script(hosting, site, PUBLISH_HOSTING_CONFIG="{rewrites: oops")

    assert result.returncode == 1
    assert "PUBLISH_HOSTING_CONFIG is not JSON" in result.stderr
    assert hosting.requests == []


def test_requires_its_inputs(hosting, site):
    result = run_script(hosting, site, PUBLISH_SITE="")

    assert result.returncode == 1
    assert "Set PUBLISH_SITE." in result.stderr


@pytest.fixture
def publish_module():
    spec = importlib.util.spec_from_file_location("publish_site_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_retries_transient_errors_with_backoff(hosting, site, publish_module):
    hosting.failures["populateFiles"] = [503, 429]
    sleeps: list[float] = []
    api = publish_module.HostingApi(hosting.url, "demo-project", TOKEN, sleep=sleeps.append)
    files = publish_module.collect_files(site, CONFIG_JS)

    summary = publish_module.publish(api, SITE, files, HOSTING_CONFIG, "retry")

    assert summary["version"] == VERSION and summary["files"] == 5
    assert sleeps == [1, 2]
    assert hosting.steps().count("populateFiles") == 3


def test_gives_up_after_bounded_attempts(hosting, site, publish_module):
    hosting.failures["finalize"] = [503] * 10
    sleeps: list[float] = []
    api = publish_module.HostingApi(hosting.url, "demo-project", TOKEN, sleep=sleeps.append)
    files = publish_module.collect_files(site, CONFIG_JS)

    with pytest.raises(publish_module.PublishError, match="finalize failed: HTTP 503"):
        publish_module.publish(api, SITE, files, HOSTING_CONFIG, "retry")

    assert hosting.steps().count("finalize") == publish_module.MAX_ATTEMPTS
    assert "release" not in hosting.steps()
    assert sleeps == [1, 2, 4]


def test_gzip_is_deterministic(publish_module):
    assert publish_module.gzipped(b"same") == publish_module.gzipped(b"same")


def test_never_sends_the_token_over_plain_http_to_another_host(hosting, site, publish_module):
    api = publish_module.HostingApi(hosting.url, "demo-project", TOKEN, sleep=lambda _: None)
    with pytest.raises(publish_module.PublishError, match="refusing to send the access token"):
        api.upload("http://upload.example.test/files", "0" * 64, b"x")
    with pytest.raises(publish_module.PublishError, match="refusing"):
        publish_module.HostingApi("file:///etc", "p", TOKEN).call("create version", "GET", "x")
    assert hosting.requests == []
