"""The job's HTTP client as it was when issue 12 measured it: a `requests` session, for the baseline.

`HttpClient` (`googleapis/http_session.py`) replaced it; the benchmark keeps this one so that
"today's job" in its table is the job the goals were set against, measured in the same run:
one claim and one result write per user (`batch_writes=False`), each call to Google through
`requests` with the settings that job used (`trust_env` off, one pool the size of the
concurrency, no retries). It answers as `HttpClient` does, so the job's code runs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from offline_access.googleapis.http_session import USER_AGENT, HttpResponse, TransportError


class RequestsHttp:
    """`HttpClient`'s interface over a `requests.Session` configured as the old job's was."""

    def __init__(self, pool_size: int) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                data: Mapping[str, str] | None = None, json: Any = None,
                content: bytes | None = None, headers: Mapping[str, str] | None = None,
                timeout: float) -> HttpResponse:
        try:
            answer = self.session.request(method, url, params=params, data=content or data,
                                          json=json, headers=headers, timeout=timeout,
                                          allow_redirects=False)
        except requests.exceptions.ConnectTimeout as exc:
            raise TransportError(exc, never_sent=True) from None
        except requests.RequestException as exc:
            raise TransportError(exc) from None
        return HttpResponse.of(answer.status_code, answer.headers.items(), answer.content)

    def get(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", url, **kwargs)
