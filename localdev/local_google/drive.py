"""A per-user Drive appDataFolder and the parts of `files.list` that read it.

Covers `spaces`, `pageSize` (1-1000, default 100), opaque `pageToken`s and the `fields`
partial-response syntax (`files(id,name),nextPageToken`, `files/id`, `*`). As at Google,
`nextPageToken` only appears when `fields` is absent or asks for it.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading

FOLDER_MIME = "application/vnd.google-apps.folder"
LIST_FIELDS = {"kind", "nextPageToken", "incompleteSearch", "files"}
DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")


class DriveError(Exception):
    """A Drive API error: status, message, and the `errors[0]` reason/location."""

    def __init__(self, status: int, message: str, reason: str, location: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.location = location


def _rfc3339(ts: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _file_id() -> str:
    # Drive ids are ~33 URL-safe characters starting with "1".
    return "1" + secrets.token_urlsafe(24)[:32]


class DriveStore:
    """appDataFolder contents per `sub`; every user has an empty folder until files are set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, list[dict]] = {}
        self._folders: dict[str, str] = {}

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._folders.clear()

    def set_files(self, sub: str, files: list[dict], now: float) -> list[dict]:
        """Replaces a user's appData files; each needs `name`, `mimeType` defaults to JSON."""
        folder = self.folder(sub)["id"]
        stored = []
        for item in files:
            if not isinstance(item, dict) or not item.get("name"):
                raise ValueError("each file needs a `name`")
            content = item.get("content", "")
            stored.append(
                {
                    "kind": "drive#file",
                    "id": item.get("id") or _file_id(),
                    "name": str(item["name"]),
                    "mimeType": str(item.get("mimeType") or "application/json"),
                    "parents": [folder],
                    "spaces": ["appDataFolder"],
                    "createdTime": _rfc3339(now),
                    "modifiedTime": _rfc3339(now),
                    "size": str(len(str(content).encode())),
                    "trashed": False,
                }
            )
        with self._lock:
            self._files[sub] = stored
        return [dict(f) for f in stored]

    def folder(self, sub: str) -> dict:
        with self._lock:
            folder_id = self._folders.setdefault(sub, "0A" + secrets.token_urlsafe(16)[:20])
        return {
            "kind": "drive#file",
            "id": folder_id,
            "name": "appDataFolder",
            "mimeType": FOLDER_MIME,
            "spaces": ["appDataFolder"],
        }

    def get(self, sub: str, file_id: str) -> dict | None:
        with self._lock:
            for item in self._files.get(sub, ()):
                if item["id"] == file_id:
                    return dict(item)
        return None

    def list(self, sub: str, spaces: list[str], page_size: int, page_token: str | None) -> dict:
        """The unfiltered list response for one page."""
        offset = _decode_page_token(page_token, sub) if page_token else 0
        with self._lock:
            items = list(self._files.get(sub, ())) if "appDataFolder" in spaces else []
        page = items[offset : offset + page_size]
        result: dict = {"kind": "drive#fileList", "incompleteSearch": False, "files": page}
        if offset + page_size < len(items):
            result["nextPageToken"] = _encode_page_token(offset + page_size, sub)
        return result


def _encode_page_token(offset: int, sub: str) -> str:
    raw = json.dumps({"o": offset, "u": sub[-6:]}).encode()
    return "~!!~" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str, sub: str) -> int:
    try:
        if not token.startswith("~!!~"):
            raise ValueError
        raw = token[4:]
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if data["u"] != sub[-6:] or int(data["o"]) < 0:
            raise ValueError
        return int(data["o"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise DriveError(400, "Invalid Value", "invalid", "pageToken") from None


def parse_page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return 100
    try:
        size = int(raw)
    except ValueError:
        raise DriveError(400, f"Invalid value '{raw}'. Values must be within the range: [1, 1000]",
                         "invalid", "pageSize") from None
    if not 1 <= size <= 1000:
        raise DriveError(400, f"Invalid value '{raw}'. Values must be within the range: [1, 1000]",
                         "invalid", "pageSize")
    return size


def parse_spaces(raw: str | None) -> list[str]:
    spaces = [s.strip() for s in (raw or "drive").split(",") if s.strip()]
    for space in spaces:
        if space not in ("drive", "appDataFolder"):
            raise DriveError(400, "Invalid Value", "invalid", "spaces")
    return spaces


# The `fields` partial-response syntax: comma-separated paths; `a/b` selects into an object;
# `a(b,c)` selects several sub-fields; `*` selects everything.


def parse_fields(expr: str) -> dict:
    """Parses a `fields` expression into a tree: {name: subtree or True}."""
    tree: dict = {}
    pos = _parse_list(expr, 0, tree)
    if pos != len(expr):
        raise DriveError(400, f"Invalid field selection {expr}", "invalidParameter", "fields")
    return tree


def _parse_list(expr: str, pos: int, tree: dict) -> int:
    while True:
        pos = _parse_path(expr, pos, tree)
        if pos < len(expr) and expr[pos] == ",":
            pos += 1
            continue
        return pos


def _parse_path(expr: str, pos: int, tree: dict) -> int:
    start = pos
    while pos < len(expr) and expr[pos] not in ",()/":
        pos += 1
    name = expr[start:pos].strip()
    if not name:
        raise DriveError(400, f"Invalid field selection {expr}", "invalidParameter", "fields")
    if pos < len(expr) and expr[pos] == "/":
        sub = tree.get(name)
        sub = sub if isinstance(sub, dict) else {}
        tree[name] = sub
        return _parse_path(expr, pos + 1, sub)
    if pos < len(expr) and expr[pos] == "(":
        sub = tree.get(name)
        sub = sub if isinstance(sub, dict) else {}
        tree[name] = sub
        pos = _parse_list(expr, pos + 1, sub)
        if pos >= len(expr) or expr[pos] != ")":
            raise DriveError(400, f"Invalid field selection {expr}", "invalidParameter", "fields")
        return pos + 1
    tree[name] = True
    return pos


def select_list_fields(response: dict, fields: str | None) -> dict:
    """Applies `fields` to a files.list response (default: Drive v3's default selection)."""
    if fields is None or fields == "":
        selected = {k: response[k] for k in ("kind", "incompleteSearch", "nextPageToken") if k in response}
        selected["files"] = [{k: f[k] for k in DEFAULT_FILE_FIELDS if k in f} for f in response["files"]]
        return selected
    tree = parse_fields(fields)
    if "*" in tree:
        return response
    for name in tree:
        if name not in LIST_FIELDS:
            raise DriveError(400, f"Invalid field selection {name}", "invalidParameter", "fields")
    return _apply(response, tree)


def select_file_fields(item: dict, fields: str | None) -> dict:
    if not fields:
        return {k: item[k] for k in DEFAULT_FILE_FIELDS if k in item}
    tree = parse_fields(fields)
    return item if "*" in tree else _apply(item, tree)


def _apply(value, tree: dict | bool):
    if tree is True or (isinstance(tree, dict) and "*" in tree):
        return value
    if isinstance(value, list):
        return [_apply(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    # Unknown file fields are omitted, as Drive omits fields that have no value.
    return {name: _apply(value[name], sub) for name, sub in tree.items() if name in value}
