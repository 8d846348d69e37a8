#!/usr/bin/env python3
"""Publish the sign-in page to a Firebase Hosting site through the Hosting REST API.

`terraform apply` runs this from `terraform_data.publish_site` (terraform/hosting.tf): no
Terraform resource uploads Hosting files, so this does what `firebase deploy` does for hosting
(https://firebase.google.com/docs/hosting/api-deploy):

1. create a version carrying the serving configuration (rewrites, headers);
2. `populateFiles` with the SHA-256 of each gzipped file;
3. upload the gzipped files whose hashes Hosting does not already have;
4. finalize the version;
5. release it on the live channel.

The page is every file of the source directory except hidden files, Markdown and a local
`config.js`, plus the `config.js` that Terraform generated for this deployment.

Input comes from the environment, so nothing needs shell quoting:

    PUBLISH_PROJECT         project ID (quota project of the API calls)
    PUBLISH_SITE            Hosting site ID
    PUBLISH_SOURCE_DIR      directory of the static page (static_site/)
    PUBLISH_CONFIG_JS       content of the generated config.js
    PUBLISH_HOSTING_CONFIG  JSON ServingConfig of the version
    PUBLISH_MESSAGE         release message (optional)
    FIREBASE_HOSTING_API    API origin (optional; tests point it at a fake)
    PUBLISH_ACCESS_TOKEN    OAuth access token (optional; otherwise Application Default
                            Credentials, through google-auth if installed, else gcloud)

Only the standard library is needed. The access token is never printed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_API = "https://firebasehosting.googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GENERATED_CONFIG = "/config.js"
POPULATE_BATCH = 1000
TIMEOUT_SECONDS = 60
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 4
_VERSION_NAME = re.compile(r"^sites/[a-z0-9-]+/versions/[A-Za-z0-9_-]+$")


class PublishError(Exception):
    """Publishing failed; the message says which step and why."""


def gzipped(data: bytes) -> bytes:
    """Gzip deterministically (fixed mtime), so equal content always has one hash."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _skipped(relative: Path) -> bool:
    if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
        return True
    if relative.suffix.lower() == ".md":
        return True
    # The generated config.js replaces any local one (e.g. a development config).
    return relative.as_posix() == GENERATED_CONFIG.lstrip("/")


def collect_files(source_dir: Path, config_js: str) -> dict[str, bytes]:
    """Map each Hosting path ("/index.html") to the file's content."""
    if not (source_dir / "index.html").is_file():
        raise PublishError(f"{source_dir}/index.html not found: nothing to publish.")
    files: dict[str, bytes] = {}
    for path in sorted(source_dir.rglob("*")):
        relative = path.relative_to(source_dir)
        if path.is_file() and not _skipped(relative):
            files["/" + relative.as_posix()] = path.read_bytes()
    files[GENERATED_CONFIG] = config_js.encode("utf-8")
    return files


def default_access_token() -> str:
    """An access token from Application Default Credentials, as Terraform uses."""
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError:
        pass
    else:
        try:
            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            credentials.refresh(google.auth.transport.requests.Request())
        except Exception as exc:  # google-auth raises several unrelated types here
            raise PublishError(
                "Application Default Credentials are unusable "
                f"({type(exc).__name__}); run: gcloud auth application-default login"
            ) from None
        return credentials.token
    try:
        result = subprocess.run(
            ["gcloud", "auth", "application-default", "print-access-token"],
            capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        result = None
    if result is None or result.returncode != 0 or not result.stdout.strip():
        raise PublishError(
            "No access token: install google-auth (pip install google-auth requests) or the "
            "gcloud CLI, then run: gcloud auth application-default login"
        )
    return result.stdout.strip()


def _checked_url(url: str) -> str:
    """Only https, or http to this machine (the tests' fake API): never file: or others."""
    parts = urllib.parse.urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return url
    raise PublishError(f"refusing to send the access token to {parts.scheme}://{parts.hostname}")


def _api_error(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return f"{error.get('status', '')} {error.get('message', '')}".strip()
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")


class HostingApi:
    """Just enough of the Firebase Hosting REST API (v1beta1), with bounded retries."""

    def __init__(self, origin: str, project: str, token: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._origin = origin.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token}",
            # End-user credentials need a quota project for this API.
            "x-goog-user-project": project,
        }
        self._sleep = sleep

    def _send(self, step: str, method: str, url: str, body: bytes | None,
              content_type: str) -> dict[str, Any]:
        headers = dict(self._headers, **{"Content-Type": content_type})
        url = _checked_url(url)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - scheme checked
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                    raw = response.read()
                    return json.loads(raw) if raw.strip() else {}
            except urllib.error.HTTPError as exc:
                detail = f"HTTP {exc.code} {_api_error(exc.read())}"
                retryable = exc.code in RETRY_STATUSES
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                detail = f"network error: {getattr(exc, 'reason', exc)}"
                retryable = True
            if not retryable or attempt == MAX_ATTEMPTS:
                raise PublishError(f"{step} failed: {detail}")
            self._sleep(2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def call(self, step: str, method: str, path: str, payload: Mapping[str, Any] | None = None,
             query: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = f"{self._origin}/v1beta1/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        body = json.dumps(payload).encode() if payload is not None else None
        return self._send(step, method, url, body, "application/json")

    def upload(self, upload_url: str, digest: str, content: bytes) -> None:
        self._send(f"upload of {digest[:12]}", "POST", f"{upload_url.rstrip('/')}/{digest}",
                   content, "application/octet-stream")


def publish(api: HostingApi, site: str, files: Mapping[str, bytes],
            hosting_config: Mapping[str, Any], message: str) -> dict[str, Any]:
    """Create, fill, finalize and release one version; return a summary."""
    version = api.call("create version", "POST", f"sites/{site}/versions",
                       {"config": hosting_config, "labels": {"deployed-by": "terraform"}})
    name = version.get("name", "")
    if not _VERSION_NAME.match(name):
        raise PublishError(f"create version returned an unexpected name: {name!r}")

    blobs = {path: gzipped(content) for path, content in files.items()}
    hashes = {path: hashlib.sha256(blob).hexdigest() for path, blob in blobs.items()}
    by_hash = {digest: blobs[path] for path, digest in hashes.items()}

    paths = sorted(hashes)
    required: set[str] = set()
    upload_url = ""
    for start in range(0, len(paths), POPULATE_BATCH):
        batch = {path: hashes[path] for path in paths[start:start + POPULATE_BATCH]}
        populated = api.call("populateFiles", "POST", f"{name}:populateFiles", {"files": batch})
        required.update(populated.get("uploadRequiredHashes", []))
        upload_url = populated.get("uploadUrl", upload_url)
    unknown = required - by_hash.keys()
    if unknown:
        raise PublishError(f"populateFiles asked for {len(unknown)} unknown hash(es).")
    if required and not upload_url:
        raise PublishError("populateFiles asked for uploads but gave no uploadUrl.")
    for digest in sorted(required):
        api.upload(upload_url, digest, by_hash[digest])

    api.call("finalize", "PATCH", name, {"status": "FINALIZED"}, {"update_mask": "status"})
    release = api.call("release", "POST", f"sites/{site}/releases", {"message": message},
                       {"versionName": name})
    return {"version": name, "release": release.get("name", ""), "files": len(files),
            "uploaded": len(required)}


def _env(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value.strip():
        raise PublishError(f"Set {name}.")
    return value


def main(environ: Mapping[str, str] = os.environ,
         token_source: Callable[[], str] = default_access_token) -> int:
    try:
        project = _env(environ, "PUBLISH_PROJECT")
        site = _env(environ, "PUBLISH_SITE")
        source_dir = Path(_env(environ, "PUBLISH_SOURCE_DIR"))
        config_js = _env(environ, "PUBLISH_CONFIG_JS")
        try:
            hosting_config = json.loads(_env(environ, "PUBLISH_HOSTING_CONFIG"))
        except ValueError as exc:
            raise PublishError(f"PUBLISH_HOSTING_CONFIG is not JSON: {exc}") from None
        if not isinstance(hosting_config, dict):
            raise PublishError("PUBLISH_HOSTING_CONFIG must be a JSON object.")
        message = environ.get("PUBLISH_MESSAGE", "").strip() or "terraform apply"

        files = collect_files(source_dir, config_js)
        token = environ.get("PUBLISH_ACCESS_TOKEN", "").strip() or token_source()
        api = HostingApi(environ.get("FIREBASE_HOSTING_API", "").strip() or DEFAULT_API,
                         project, token)
        summary = publish(api, site, files, hosting_config, message)
    except PublishError as exc:
        print(f"publish_site: {exc}", file=sys.stderr)
        return 1
    print(f"publish_site: released {summary['version']} on site {site}: "
          f"{summary['files']} files, {summary['uploaded']} uploaded.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
