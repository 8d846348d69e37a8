"""The accounts and OAuth clients the local Google knows about.

Users stand for Google Accounts (consumer or Workspace); clients stand for OAuth web clients
registered in a Cloud project, with their secret, Authorized JavaScript origins and the
project settings that change token behaviour (Testing publishing status, refresh-token mode).
Every client belongs to a project (`project_id`): grants are kept per user and project, and the
project owns the RISC stream. A client created without one is alone in its own project.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from dataclasses import dataclass, field

REFRESH_TOKEN_MODES = ("first_consent", "always")


@dataclass(slots=True)
class User:
    sub: str
    email: str
    name: str
    given_name: str
    family_name: str
    picture: str | None = None
    hd: str | None = None
    email_verified: bool = True

    def public(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Client:
    client_id: str
    client_secret: str
    javascript_origins: list[str] = field(default_factory=list)
    deleted: bool = False
    testing_mode: bool = False
    refresh_token_mode: str = "first_consent"
    name: str = "Local app"
    project_id: str = ""

    def __post_init__(self) -> None:
        if not self.project_id:
            self.project_id = default_project_id(self.client_id)

    def public(self) -> dict:
        return dataclasses.asdict(self)


def default_project_id(client_id: str) -> str:
    """The project of a client created without one: its own, named after the id's first label.

    `123-abc.apps.googleusercontent.com` is in project `123-abc`, so every such client is alone
    in its project, as the local Google behaved before projects existed.
    """
    label = client_id.split(".", 1)[0].lower()
    return re.sub(r"[^a-z0-9-]", "-", label) or "project"


def default_users() -> list[User]:
    """A consumer account, a Workspace account and an account with an unverified email."""
    return [
        User("100000000000000000001", "alice@example.com", "Alice Example", "Alice", "Example"),
        User(
            "100000000000000000002",
            "bob@example.org",
            "Bob Builder",
            "Bob",
            "Builder",
            hd="example.org",
        ),
        User(
            "100000000000000000003",
            "carol@example.net",
            "Carol Unverified",
            "Carol",
            "Unverified",
            email_verified=False,
        ),
    ]


def sub_for_email(email: str) -> str:
    """A stable 21-digit `sub` for an email, shaped like Google's."""
    digest = int.from_bytes(hashlib.sha256(email.lower().encode()).digest()[:16], "big")
    return "1" + str(digest % 10**20).zfill(20)


def user_from_email(email: str, sub: str | None = None) -> User:
    """A consumer account derived from an email (custom accounts on the consent page)."""
    local = email.split("@", 1)[0]
    parts = [p for p in local.replace("_", ".").replace("-", ".").split(".") if p] or [local]
    given = parts[0].capitalize()
    family = " ".join(p.capitalize() for p in parts[1:]) or "User"
    return User(sub or sub_for_email(email), email, f"{given} {family}", given, family)


class Directory:
    """Thread-safe registry of users (by sub and by email) and clients (by client_id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._by_email: dict[str, str] = {}
        self._clients: dict[str, Client] = {}
        self.default_client_id: str | None = None
        self.reset_users()

    # Users

    def reset_users(self) -> None:
        with self._lock:
            self._users.clear()
            self._by_email.clear()
            for user in default_users():
                self._put_locked(user)

    def _put_locked(self, user: User) -> None:
        old = self._users.get(user.sub)
        if old is not None:
            self._by_email.pop(old.email.lower(), None)
        self._users[user.sub] = user
        self._by_email[user.email.lower()] = user.sub

    def put_user(self, user: User) -> User:
        with self._lock:
            self._put_locked(user)
        return user

    def user(self, sub: str) -> User | None:
        return self._users.get(sub)

    def user_by_email(self, email: str) -> User | None:
        sub = self._by_email.get(email.lower())
        return self._users.get(sub) if sub else None

    def find_user(self, sub: str | None = None, email: str | None = None) -> User | None:
        if sub:
            return self.user(sub)
        if email:
            return self.user_by_email(email)
        return None

    def resolve_user(self, sub: str | None = None, email: str | None = None) -> User:
        """Finds a user by sub or email, creating a consumer account when unknown."""
        found = self.find_user(sub, email)
        if found is not None:
            return found
        if not sub and not email:
            raise ValueError("a user needs `sub` or `email`")
        with self._lock:
            found = self._users.get(sub) if sub else None
            if found is None and email:
                known = self._by_email.get(email.lower())
                found = self._users.get(known) if known else None
            if found is None:
                found = user_from_email(email or f"user-{sub}@example.com", sub)
                self._put_locked(found)
            return found

    def users(self) -> list[User]:
        with self._lock:
            return list(self._users.values())

    # Clients

    def put_client(self, client: Client) -> Client:
        if client.refresh_token_mode not in REFRESH_TOKEN_MODES:
            raise ValueError(f"refresh_token_mode must be one of {REFRESH_TOKEN_MODES}")
        with self._lock:
            self._clients[client.client_id] = client
            if self.default_client_id is None:
                self.default_client_id = client.client_id
        return client

    def update_client(self, client_id: str, **changes) -> Client:
        """Creates or updates a client; a new client needs `client_secret`."""
        with self._lock:
            current = self._clients.get(client_id)
        if current is None:
            if not changes.get("client_secret"):
                raise ValueError("a new client needs `client_secret`")
            return self.put_client(Client(client_id=client_id, **changes))
        return self.put_client(dataclasses.replace(current, **changes))

    def client(self, client_id: str | None) -> Client | None:
        return self._clients.get(client_id) if client_id else None

    def project_clients(self, project_id: str) -> list[Client]:
        """The project's clients, in the order they were created."""
        with self._lock:
            return [c for c in self._clients.values() if c.project_id == project_id]

    def default_project(self) -> str | None:
        """The default client's project (where service accounts go when none is named)."""
        client = self.client(self.default_client_id)
        return client.project_id if client else None

    def clients(self) -> list[Client]:
        with self._lock:
            return list(self._clients.values())
