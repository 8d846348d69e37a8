"""One pooled HTTP session per instance for every call to Google.

Reusing connections (keep-alive, TLS sessions) is most of the speed of the scheduled job and of
warm exchanges. Retries are never automatic at this level: each caller decides whether a request
may be repeated (a one-time code may not be).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import requests
from requests.adapters import HTTPAdapter

USER_AGENT = "offline-access/1.0 (+google-one-time-code-flow)"
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def make_session(pool_size: int = 16, environ: Mapping[str, str] = os.environ) -> requests.Session:
    """A session whose connection pool fits `pool_size` concurrent requests per host."""
    session = requests.Session()
    if not any(environ.get(n) or environ.get(n.lower()) for n in _PROXY_VARIABLES):
        # With trust_env, requests re-reads proxy, CA-bundle and netrc settings on every
        # request (about a tenth of the job's CPU per user). Without proxies, read the CA
        # bundle once here instead.
        session.trust_env = False
        bundle = next((environ[n] for n in _CA_BUNDLE_VARIABLES if environ.get(n)), None)
        if bundle:
            session.verify = bundle
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session
