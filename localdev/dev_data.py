"""What `make dev` keeps between runs, in the git-ignored `.dev-data/` (`make dev-reset` deletes it).

- `secrets.json`: the local secrets (the local OAuth client's secret, the sealing and session
  keys), so that stored tokens still open and session cookies still count after a restart;
- `firestore/export-*`: the Firestore emulator's data, exported when `make dev` stops and after
  every scheduled run, imported when it starts (only the newest export is kept);
- `account-sa-key.json`: the account API's service-account key, made by the local Google at
  each start (its key registry lives in memory);
- `cli.env`: the functions' settings, for `offline-access --env-file .dev-data/cli.env`.

The local Google keeps its grants in memory, so after a restart it knows none of the refresh
tokens stored in Firestore. `restore_grants` gives each active user a grant again the way they
got it the first time: a consent through the local Google's control API and a real exchange.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

from .processes import REPO, FirestoreEmulator

DEV_DATA = REPO / ".dev-data"


class DevData:
    """The `.dev-data/` folder."""

    def __init__(self, root: Path = DEV_DATA) -> None:
        self.root = root
        self.root.mkdir(exist_ok=True)
        self._secrets_path = root / "secrets.json"
        self.firestore_dir = root / "firestore"

    def secret(self, name: str, make: Callable[[], str]) -> str:
        """The value kept under `name`, made (and kept) on first use."""
        stored = json.loads(self._secrets_path.read_text()) if self._secrets_path.exists() else {}
        if name not in stored:
            stored[name] = make()
            self._secrets_path.write_text(json.dumps(stored, indent=2))
            self._secrets_path.chmod(0o600)
        return str(stored[name])

    def secret_manager(self, server, seed: Callable[[], dict[str, str]]) -> dict[str, str]:
        """Fill the local Secret Manager as the last run left it (key rotations included), or
        with `seed()` on a first start; the functions' variables that name the secrets."""
        path = self.root / "secret-manager.json"
        if path.exists():
            kept = json.loads(path.read_text())
            server.restore(kept["secrets"])
            return dict(kept["env"])
        env = seed()
        self.save_secret_manager(server, env)
        return env

    def save_secret_manager(self, server, env: Mapping[str, str] | None = None) -> None:
        """Keep the local Secret Manager's secrets (and the variables naming them)."""
        path = self.root / "secret-manager.json"
        if env is None:
            if not path.exists():
                return
            env = json.loads(path.read_text())["env"]
        path.write_text(json.dumps({"env": dict(env), "secrets": server.snapshot()}, indent=2))
        path.chmod(0o600)

    def latest_export(self) -> Path | None:
        """The newest Firestore export's metadata file, or None on a first start."""
        exports = sorted(self.firestore_dir.glob("export-*/*/*.overall_export_metadata"))
        return exports[-1] if exports else None

    def save_firestore(self, emulator: FirestoreEmulator, project: str) -> Path:
        """Export the emulator's data, then delete the older exports."""
        target = self.firestore_dir / f"export-{time.time_ns()}"
        metadata = emulator.export(project, target)
        for older in self.firestore_dir.glob("export-*"):
            if older != target:
                shutil.rmtree(older, ignore_errors=True)
        return metadata

    def write_json(self, name: str, value: object) -> Path:
        path = self.root / name
        path.write_text(json.dumps(value, indent=2))
        path.chmod(0o600)
        return path

    def write_env(self, name: str, env: Mapping[str, str]) -> Path:
        path = self.root / name
        path.write_text("# Written by make dev: the functions' settings, for the offline-access CLI.\n"
                        + "".join(f"{key}={value}\n" for key, value in sorted(env.items())))
        return path


def restore_grants(users: list[dict], google_control, *, client_id: str, exchange_url: str,
                   origin: str) -> int:
    """Give each stored active user a live grant at a freshly started local Google again.

    Each gets a consent (`mint_code` with their stored scopes) and the code goes through the
    real exchange, which stores the new refresh token as any sign-in does. Returns how many.
    """
    restored = 0
    known = {account["sub"] for account in google_control.users()}
    for user in users:
        if user.get("status") != "active" or not user.get("email"):
            continue
        if user["sub"] not in known:  # an account typed on the consent page last time
            google_control.user(email=user["email"], sub=user["sub"], name=user.get("name"),
                                email_verified=bool(user.get("email_verified", True)),
                                hd=user.get("hd"))
        scopes = user.get("granted_scopes") or ["openid", "email"]
        minted = google_control.mint_code(scopes, sub=user["sub"], client_id=client_id,
                                          prompt="consent")
        answer = requests.post(exchange_url, json={"code": minted["code"]}, timeout=30,
                               headers={"X-Requested-With": "XMLHttpRequest", "Origin": origin})
        restored += answer.status_code == 200
    return restored
