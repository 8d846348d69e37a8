"""The local page server's `/api/*` rewrites: one origin, only `__session` passed on, as Hosting does."""

from __future__ import annotations

import json
import threading

import flask
import pytest
import requests
from werkzeug.serving import make_server

from localdev.processes import free_port
from localdev.static_server import StaticSite, only_session_cookie


@pytest.fixture(scope="module")
def upstream():
    """A function stand-in that echoes what reached it and sets a cookie."""
    app = flask.Flask("echo")
    seen: list[dict] = []

    @app.route("/api/<path:rest>", methods=["GET", "POST", "OPTIONS"])
    def echo(rest: str) -> flask.Response:
        seen.append({"path": flask.request.full_path, "method": flask.request.method,
                     "cookie": flask.request.headers.get("Cookie"),
                     "body": flask.request.get_data(as_text=True),
                     "forwarded_host": flask.request.headers.get("X-Forwarded-Host"),
                     "requested_with": flask.request.headers.get("X-Requested-With")})
        response = flask.Response(json.dumps({"rest": rest}), status=201,
                                  content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        response.headers.add("Set-Cookie", "__session=new; Path=/api; HttpOnly")
        response.headers.add("Set-Cookie", "other=x; Path=/")
        return response

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


@pytest.fixture(scope="module")
def site(upstream, tmp_path_factory):
    base, _ = upstream
    site_dir = tmp_path_factory.mktemp("site")
    (site_dir / "index.html").write_text("<!doctype html><title>page</title>")
    dead = f"http://127.0.0.1:{free_port()}"
    server = StaticSite(exchange_url="/api/exchange", gis_script_url="http://127.0.0.1:1/gsi/client",
                        site_dir=site_dir, port=0,
                        rewrites={"/api/": base, "/api/dead": dead}).start()
    yield server
    server.stop()


def test_api_requests_reach_the_function_with_only_the_session_cookie(site, upstream):
    _, seen = upstream
    answer = requests.post(f"{site.url}/api/me?x=1", data="hello",
                           headers={"Cookie": "analytics=1; __session=abc.def; other=2",
                                    "X-Requested-With": "XMLHttpRequest"}, timeout=5)

    assert answer.status_code == 201 and answer.json() == {"rest": "me"}
    last = seen[-1]
    assert last["path"] == "/api/me?x=1" and last["method"] == "POST" and last["body"] == "hello"
    assert last["cookie"] == "__session=abc.def"
    assert last["requested_with"] == "XMLHttpRequest"
    assert last["forwarded_host"] == site.url.removeprefix("http://")
    assert answer.raw.headers.getlist("Set-Cookie") == ["__session=new; Path=/api; HttpOnly",
                                                         "other=x; Path=/"]
    # The function's caching wins; the site's security headers are added, once each.
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in answer.headers


def test_without_a_session_cookie_no_cookie_is_sent(site, upstream):
    _, seen = upstream
    requests.get(f"{site.url}/api/me", headers={"Cookie": "analytics=1"}, timeout=5)
    assert seen[-1]["cookie"] is None


def test_static_files_are_still_served_with_the_page_headers(site):
    answer = requests.get(f"{site.url}/", timeout=5)
    assert answer.status_code == 200 and "<title>page</title>" in answer.text
    assert answer.headers["Cache-Control"] == "no-cache"
    assert requests.post(f"{site.url}/index.html", timeout=5).status_code == 405


def test_a_function_that_does_not_answer_is_a_502_json(site):
    answer = requests.get(f"{site.url}/api/dead/x", timeout=5)
    assert answer.status_code == 502
    assert answer.json()["error"] == "service_unavailable"


@pytest.mark.parametrize("header, expected", [
    ("__session=v1.2.abc", "__session=v1.2.abc"),
    ("a=1; __session=x; b=2", "__session=x"),
    ("a=1", None), ("", None), (None, None), ('bad"cookie', None),
])
def test_only_session_cookie(header, expected):
    assert only_session_cookie(header) == expected
