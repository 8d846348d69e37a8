"""`GoogleControl`: a small `requests` client for the local Google's `/_control/` API.

    control = GoogleControl("http://127.0.0.1:8090")
    minted = control.mint_code(sub="100000000000000000001", scopes="openid email drive.appdata")
    control.fault("/token", status=503, times=2)
    control.counters()["requests"]["POST /token"]
    key_file = control.service_account()["key_file"]      # RISC: a service account's key
    control.set_risc_stream("http://127.0.0.1:9000/risc")  # or stream:update with the key
    sent = control.risc_event("sessions-revoked", sub="100000000000000000001")
    control.risc_wait(sent["jti"])["acked"]

Every method raises `requests.HTTPError` when the control API rejects the input.
"""

from __future__ import annotations

from typing import Any

import requests


class GoogleControl:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, path: str, body: dict | None = None, *,
              params: dict | None = None, timeout: float | None = None) -> Any:
        response = self._session.request(
            method, f"{self.base_url}/_control/{path}", json=body, params=params,
            timeout=timeout or self.timeout,
        )
        if response.status_code >= 400:
            raise requests.HTTPError(
                f"{method} /_control/{path} -> {response.status_code}: {response.text}",
                response=response,
            )
        return response.json()

    @staticmethod
    def _clean(**fields: Any) -> dict:
        return {k: v for k, v in fields.items() if v is not None}

    # State

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def reset(self) -> None:
        """Forgets users, grants, tokens, files, faults, counters, clock (keeps keys, clients)."""
        self._call("POST", "reset")

    def state(self) -> dict:
        """Grants and refresh tokens (live and dead, with reasons)."""
        return self._call("GET", "state")

    def counters(self) -> dict:
        return self._call("GET", "counters")

    def settings(self, code_ttl_seconds: int | None = None,
                 certs_max_age_seconds: int | None = None) -> dict:
        body = self._clean(code_ttl_seconds=code_ttl_seconds,
                           certs_max_age_seconds=certs_max_age_seconds)
        return self._call("POST", "settings", body) if body else self._call("GET", "settings")

    # Directory

    def client(
        self,
        client_id: str,
        client_secret: str | None = None,
        javascript_origins: list[str] | None = None,
        *,
        deleted: bool | None = None,
        testing_mode: bool | None = None,
        refresh_token_mode: str | None = None,
        name: str | None = None,
        project_id: str | None = None,
    ) -> dict:
        """Creates or updates an OAuth client (a new client needs `client_secret`).

        Clients with the same `project_id` share grants (and the project's RISC stream); a
        client created without one is alone in its own project.
        """
        return self._call("POST", "clients", self._clean(
            client_id=client_id, client_secret=client_secret,
            javascript_origins=javascript_origins, deleted=deleted, testing_mode=testing_mode,
            refresh_token_mode=refresh_token_mode, name=name, project_id=project_id,
        ))

    def clients(self) -> list[dict]:
        return self._call("GET", "clients")["clients"]

    def user(
        self,
        email: str,
        sub: str | None = None,
        *,
        name: str | None = None,
        picture: str | None = None,
        hd: str | None = None,
        email_verified: bool | None = None,
    ) -> dict:
        """Creates or replaces a test account (sub derived from the email when omitted)."""
        return self._call("POST", "users", self._clean(
            email=email, sub=sub, name=name, picture=picture, hd=hd, email_verified=email_verified,
        ))

    def users(self, users: list[dict] | None = None) -> list[dict]:
        """Adds many accounts at once, or lists them when called without arguments."""
        if users is None:
            return self._call("GET", "users")["users"]
        return self._call("POST", "users", {"users": users})["users"]

    # Codes and grants

    def mint_code(
        self,
        scopes: str | list[str],
        *,
        sub: str | None = None,
        email: str | None = None,
        client_id: str | None = None,
        granted_scopes: str | list[str] | None = None,
        redirect_uri: str | None = None,
        offline: bool | None = None,
        include_granted_scopes: bool | None = None,
        prompt: str | None = None,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
        refresh_token_lifetime_seconds: int | None = None,
    ) -> dict:
        """Mints a code as the consent page's Allow would: returns {code, scope, prompt, sub, email}."""
        return self._call("POST", "codes", self._clean(
            scopes=scopes, sub=sub, email=email, client_id=client_id,
            granted_scopes=granted_scopes, redirect_uri=redirect_uri, offline=offline,
            include_granted_scopes=include_granted_scopes, prompt=prompt,
            code_challenge=code_challenge, code_challenge_method=code_challenge_method,
            refresh_token_lifetime_seconds=refresh_token_lifetime_seconds,
        ))

    def revoke_grant(self, sub: str, client_id: str | None = None) -> bool:
        """The user removes the app's access in their Google Account (for the client's whole
        project)."""
        return self._call("POST", "revoke-grant", self._clean(sub=sub, client_id=client_id))["revoked"]

    def reauth_required(self, sub: str, required: bool = True) -> None:
        self._call("POST", "reauth-required", {"sub": sub, "required": required})

    def drive_files(self, sub: str, files: list[dict]) -> list[dict]:
        """Replaces the user's appDataFolder files: [{name, mimeType?}] -> stored files with ids."""
        return self._call("POST", "drive-files", {"sub": sub, "files": files})["files"]

    # Faults, timing, keys

    def fault(
        self,
        path: str,
        status: int | None = None,
        body: str | dict | None = None,
        *,
        headers: dict[str, str] | None = None,
        latency_ms: int | None = None,
        timeout: bool | None = None,
        hang_seconds: float | None = None,
        times: int | None = None,
        match: dict[str, str] | None = None,
        method: str | None = None,
        stall_after_bytes: int | None = None,
        drip_interval_ms: int | None = None,
    ) -> dict:
        """Queues a fault for `path` (`times` default 1, -1 = until cleared).

        `latency_ms` delays the answer; `timeout` holds the request `hang_seconds` and drops
        the connection unanswered; `stall_after_bytes` sends the headers and that many bytes of
        the answer (the fault's, or the endpoint's without `status`), then holds the rest
        `hang_seconds` and closes; `drip_interval_ms` sends the rest one byte at a time.
        """
        return self._call("POST", "faults", self._clean(
            path=path, status=status, body=body, headers=headers, latency_ms=latency_ms,
            timeout=timeout, hang_seconds=hang_seconds, times=times, match=match, method=method,
            stall_after_bytes=stall_after_bytes, drip_interval_ms=drip_interval_ms,
        ))

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def latency(self, ms: int) -> None:
        self._call("POST", "latency", {"ms": ms})

    def id_token_mode(self, mode: str) -> None:
        self._call("POST", "id-token-mode", {"mode": mode})

    def rotate_keys(self) -> dict:
        """Returns {kid: the new signing kid, published: [kids]}."""
        return self._call("POST", "rotate-keys")

    def advance_clock(self, seconds: float) -> float:
        """Moves the local Google's clock forward; returns the total offset."""
        return self._call("POST", "clock", {"advance_seconds": seconds})["offset_seconds"]

    # RISC (Cross-Account Protection)

    def service_account(
        self,
        email: str | None = None,
        project_id: str | None = None,
        *,
        roles: list[str] | None = None,
        public_key_pem: str | None = None,
    ) -> dict:
        """Registers a service account (or adds a key to it).

        Without `public_key_pem` a key pair is generated and the answer's `key_file` is the
        account's JSON key file (private key included), as the Cloud console downloads it.
        `roles` defaults to `["roles/riscconfigs.admin"]`; the project defaults to the one in
        the email, else the default client's.
        """
        return self._call("POST", "service-accounts", self._clean(
            email=email, project_id=project_id, roles=roles, public_key_pem=public_key_pem))

    def service_accounts(self) -> list[dict]:
        return self._call("GET", "service-accounts")["service_accounts"]

    def risc_settings(self, **changes: Any) -> dict:
        """Reads, or changes: allow_http_receivers ("loopback" | True | False),
        authorized_domains, max_attempts, backoff_seconds, max_backoff_seconds, timeout_seconds."""
        return self._call("POST", "risc/settings", changes) if changes else self._call("GET", "risc/settings")

    def risc_stream(self, project_id: str | None = None) -> dict | None:
        """The project's stream `{delivery, events_requested, events_delivered, status}`, or None."""
        return self._call("GET", "risc/stream", params=self._clean(project_id=project_id))["stream"]

    def set_risc_stream(self, url: str, events_requested: list[str] | None = None, *,
                        status: str | None = None, project_id: str | None = None) -> dict:
        """Configures the stream directly (default: every event type, enabled)."""
        return self._call("POST", "risc/stream", self._clean(
            url=url, events_requested=events_requested, status=status, project_id=project_id))["stream"]

    def delete_risc_stream(self, project_id: str | None = None) -> bool:
        return self._call("DELETE", "risc/stream", params=self._clean(project_id=project_id))["deleted"]

    def risc_event(
        self,
        event_type: str,
        *,
        sub: str | None = None,
        email: str | None = None,
        client_id: str | None = None,
        project_id: str | None = None,
        subject_type: str | None = None,
        reason: str | None = None,
        state: str | None = None,
        refresh_token: str | None = None,
        token_identifier_alg: str | None = None,
        revoke: bool | None = None,
        forgery: str | None = None,
    ) -> dict:
        """Pushes an event (short name or full type URI) about a user, or about a refresh token
        (`token-revoked`: `refresh_token`, or the user's newest one). Returns
        {jti, token, claims, revoked, delivery}."""
        return self._call("POST", "risc/events", self._clean(
            type=event_type, sub=sub, email=email, client_id=client_id, project_id=project_id,
            subject_type=subject_type, reason=reason, state=state, refresh_token=refresh_token,
            token_identifier_alg=token_identifier_alg, revoke=revoke, forgery=forgery,
        ))

    def risc_raw(self, token: str | None = None, *, claims: dict | None = None,
                 header: dict | None = None, key: str | None = None,
                 project_id: str | None = None) -> dict:
        """Delivers `token` as is, or `claims` signed here (`key`: current, unknown, none,
        hs256; `header` fields override, None drops one). Returns {token, delivery}."""
        return self._call("POST", "risc/raw", self._clean(
            token=token, claims=claims, header=header, key=key, project_id=project_id))

    def risc_deliveries(self) -> list[dict]:
        return self._call("GET", "risc/deliveries")["deliveries"]

    def risc_delivery(self, delivery_id: str) -> dict:
        return self._call("GET", f"risc/deliveries/{delivery_id}")

    def risc_wait(self, delivery_id: str, timeout: float = 10.0) -> dict:
        """Waits until the delivery is final (acked, gave_up, ...); raises TimeoutError if not."""
        answer = self._call("POST", "risc/wait", {"id": delivery_id, "timeout_seconds": timeout},
                            timeout=timeout + self.timeout)
        if not answer["done"]:
            raise TimeoutError(f"RISC delivery {delivery_id} still {answer['delivery']['status']} "
                               f"after {timeout} s: {answer['delivery']['answers']}")
        return answer["delivery"]

    def risc_resend(self, delivery_id: str) -> dict:
        """Delivers an earlier SET again, same jti (a duplicate the receiver must ignore)."""
        return self._call("POST", "risc/resend", {"id": delivery_id})
