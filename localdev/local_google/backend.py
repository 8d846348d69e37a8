"""The state every route of the local Google works on, gathered in one object.

`server.py` (Google's endpoints) and `control_api.py` (the test hooks) both receive a
`Backend`; `service.py` builds one and serves it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from . import scopes as scope_rules
from .clock import Clock
from .directory import Directory, User
from .drive import DriveStore
from .faults import Counters, FaultInjector
from .oauth_state import DEFAULT_CODE_TTL, OAuthState
from .service_accounts import ServiceAccounts
from .signing import ID_TOKEN_MODES, KeyRing

DEFAULT_CERTS_MAX_AGE = 21600


@dataclass
class Backend:
    clock: Clock
    directory: Directory
    keys: KeyRing
    oauth: OAuthState
    drive: DriveStore
    faults: FaultInjector
    counters: Counters
    default_code_ttl: int = DEFAULT_CODE_TTL
    default_certs_max_age: int = DEFAULT_CERTS_MAX_AGE
    certs_max_age: int = DEFAULT_CERTS_MAX_AGE
    id_token_mode: str = "normal"
    # Set when the server stops, so requests held open by a `timeout` fault end at once.
    stopping: threading.Event = field(default_factory=threading.Event)
    # Keys of service accounts (configuration, like clients: kept by `reset`).
    service_accounts: ServiceAccounts = field(default_factory=ServiceAccounts)

    @classmethod
    def create(
        cls,
        *,
        latency_ms: int = 0,
        code_ttl: int = DEFAULT_CODE_TTL,
        certs_max_age: int = DEFAULT_CERTS_MAX_AGE,
    ) -> Backend:
        clock = Clock()
        return cls(
            clock=clock,
            directory=Directory(),
            keys=KeyRing(),
            oauth=OAuthState(clock, code_ttl),
            drive=DriveStore(),
            faults=FaultInjector(latency_ms),
            counters=Counters(),
            default_code_ttl=code_ttl,
            default_certs_max_age=certs_max_age,
            certs_max_age=certs_max_age,
        )

    def reset(self) -> None:
        """Forgets users, grants, tokens, files, faults, counters and the clock offset.

        Signing keys and OAuth clients are kept: they are configuration, not state.
        """
        self.oauth.reset()
        self.oauth.code_ttl = self.default_code_ttl
        self.directory.reset_users()
        self.drive.reset()
        self.faults.reset()
        self.counters.reset()
        self.clock.reset()
        self.certs_max_age = self.default_certs_max_age
        self.id_token_mode = "normal"

    def set_id_token_mode(self, mode: str) -> None:
        if mode not in ID_TOKEN_MODES:
            raise ValueError(f"mode must be one of {', '.join(ID_TOKEN_MODES)}")
        self.id_token_mode = mode

    @staticmethod
    def picture_url(user: User, base_url: str) -> str:
        return user.picture or f"{base_url}/a/{user.sub}"

    def user_claims(self, user: User, granted: frozenset[str], base_url: str) -> dict:
        """The ID token's user claims, filtered by scope as Google does."""
        claims: dict = {"sub": user.sub}
        if user.hd:
            claims["hd"] = user.hd
        if scope_rules.USERINFO_EMAIL in granted:
            claims["email"] = user.email
            claims["email_verified"] = user.email_verified
        if scope_rules.USERINFO_PROFILE in granted:
            claims["name"] = user.name
            claims["picture"] = self.picture_url(user, base_url)
            claims["given_name"] = user.given_name
            claims["family_name"] = user.family_name
        return claims
