"""One pooled HTTP session per instance for every call to Google.

Reusing connections (keep-alive, TLS sessions) is most of the speed of the scheduled job and of
warm exchanges. Retries are never automatic at this level: each caller decides whether a request
may be repeated (a one-time code may not be).
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

USER_AGENT = "offline-access/1.0 (+google-one-time-code-flow)"


def make_session(pool_size: int = 16) -> requests.Session:
    """A session whose connection pool fits `pool_size` concurrent requests per host."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session
