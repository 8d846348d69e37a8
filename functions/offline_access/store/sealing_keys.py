"""The operator's key operations: rotate the sealing key pair, report and retire keys.

`store.sealing` says how keys are kept: a private-keys secret whose version number is the key
id, and a public-keys secret whose versions each name the key id they belong to.

- `rotate` generates a key pair with `cryptography`, adds the private half first and then the
  public half naming its version, so the halves cannot get out of step: a public key only ever
  names a private version that exists, and a failure between the two leaves an unused private
  version (reported by `status`, retirable) and no public key that names nothing.
- `status` lists each key with how many stored tokens it still opens (Firestore aggregation
  queries: counts, no documents read), by status.
- `retire` disables (or destroys) a key's versions. It is refused for the primary; while any
  refresh token of a user the product still serves uses the key (refresh tokens of
  `needs_reauth` users are dead already and do not block; the job re-seals every other user
  under the primary as it processes them, so a retired key falls out of use within one
  `JOB_INTERVAL_SECONDS`); and, when the functions follow `.../versions/latest`, until every
  instance has re-read the primary (`PUBLIC_KEY_REFRESH_SECONDS` after the rotation, plus a
  margin), since an instance that still seals with the old key would seal new sign-ins with a
  key about to go.
- `add_log_key` adds a version of the logs' user-reference key (32 random bytes).
- `add_token_id_key` creates the key of the stored refresh-token identifiers
  (`store.refresh_token_ids`, 32 random bytes); refused once it has one, unless asked to
  replace it, since identifiers made under the old version are not matched any more.

The same configuration as the functions names the secrets (`TOKEN_SEALING_PUBLIC_KEY_VERSION`,
`TOKEN_SEALING_PRIVATE_KEYS_SECRET`, `TOKEN_SEALING_KEY_VERSION`, `LOG_USER_REF_KEY_VERSION`,
`USERS_COLLECTION`, `GOOGLE_CLOUD_PROJECT`), and the client libraries' own variables point
them at `make dev`'s emulators (`SECRET_MANAGER_EMULATOR_HOST`, `FIRESTORE_EMULATOR_HOST`);
against a deployment they use Application Default Credentials.

    python -m offline_access.store.sealing_keys status | rotate [--suite X25519] |
        retire KEY [--destroy] | add-log-key | add-token-id-key [--replace]

`KEY` is a key id as `status` prints it: `3` for HPKE key 3, `aes-1` for the first releases'
AES key 1.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import secrets as random_bytes
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore, secretmanager_v1
from google.cloud.firestore_v1.base_query import FieldFilter

from ..errors import ClientError, OfflineAccessError
from .sealing import (
    DEFAULT_SUITE,
    PUBLIC_KEY_REFRESH_SECONDS,
    SEALED_V1,
    SEALED_V2,
    SUITES,
    generate_key_pair,
    parse_private_key,
    parse_public_key,
    private_key_payload,
    public_key_payload,
)
from .secrets import make_client
from .users import STATUS_NEEDS_REAUTH

SEALED_FIELDS = ("refresh_token", "access_token")
_TIMEOUT_SECONDS = 30.0
# After a rotation under `latest`, how long until no instance can still seal with the old key.
SETTLE_SECONDS = PUBLIC_KEY_REFRESH_SECONDS + 300
_ENABLED = secretmanager_v1.SecretVersion.State.ENABLED
_DESTROYED = secretmanager_v1.SecretVersion.State.DESTROYED


@dataclass(frozen=True)
class KeySecrets:
    """Where a deployment keeps its keys, and where its tokens are."""

    public_key_version: str  # the primary's public version (`latest` or a number)
    private_keys_secret: str
    legacy_key_secret: str | None = None
    log_key_secret: str | None = None
    token_id_key_secret: str | None = None
    collection: str = "users"

    @property
    def public_keys_secret(self) -> str:
        return self.public_key_version.rsplit("/versions/", 1)[0]

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> KeySecrets:
        """From the functions' own variables.

        Raises:
            ClientError: a variable is missing.
        """
        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ClientError(f"Set {name} (the functions' setting of the same name).",
                                  code="missing_setting")
            return value

        def secret_of(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value.rsplit("/versions/", 1)[0] if value else None

        return cls(
            public_key_version=need("TOKEN_SEALING_PUBLIC_KEY_VERSION"),
            private_keys_secret=need("TOKEN_SEALING_PRIVATE_KEYS_SECRET"),
            legacy_key_secret=secret_of("TOKEN_SEALING_KEY_VERSION"),
            log_key_secret=secret_of("LOG_USER_REF_KEY_VERSION"),
            token_id_key_secret=secret_of("REFRESH_TOKEN_ID_KEY_VERSION"),
            collection=env.get("USERS_COLLECTION", "").strip() or "users",
        )


@dataclass(frozen=True)
class Rotation:
    """What `rotate` added."""

    key_id: str
    suite: str
    private_version: str
    public_version: str


@dataclass
class KeyStatus:
    """One key: its id, what it is, its state, and the stored tokens it opens."""

    key: str  # `3`, or `aes-1` for a legacy AES key
    kind: str  # the HPKE suite, or `AES-256-GCM (v1)`
    state: str  # ENABLED, DISABLED, DESTROYED
    primary: bool = False
    published: bool = True  # a public key names it (HPKE); False after a half-done rotation
    refresh_tokens: int = 0  # of users the product still serves: these block retirement
    dead_refresh_tokens: int = 0  # of `needs_reauth` users: dead already, they do not block
    access_tokens: int = 0  # cached access tokens: a retired key only costs them a refresh

    def row(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class KeyOperations:
    """The key operations against one deployment's Secret Manager and Firestore."""

    secrets: KeySecrets
    secret_manager: secretmanager_v1.SecretManagerServiceClient
    firestore_client: firestore.Client | None = None  # needed by `status` and `retire` only
    project: str | None = None  # the Firestore client is made on first use, for this project
    settle_seconds: float = SETTLE_SECONDS
    _primary: str | None = field(default=None, init=False)

    # -- Secret Manager --

    def _add(self, secret: str, data: bytes) -> str:
        version = self.secret_manager.add_secret_version(
            request={"parent": secret, "payload": {"data": data}}, timeout=_TIMEOUT_SECONDS)
        return str(version.name)

    def _access(self, version_name: str) -> tuple[bytes, str]:
        response = self.secret_manager.access_secret_version(
            request={"name": version_name}, timeout=_TIMEOUT_SECONDS)
        return bytes(response.payload.data), str(response.name or version_name)

    def _versions(self, secret: str) -> list[secretmanager_v1.SecretVersion]:
        return list(self.secret_manager.list_secret_versions(
            request={"parent": secret}, timeout=_TIMEOUT_SECONDS))

    def _settled_at(self) -> dt.datetime | None:
        """When every instance following `latest` has read the current primary; None if pinned."""
        if not self.secrets.public_key_version.endswith("/versions/latest"):
            return None
        _, name = self._access(self.secrets.public_key_version)
        for version in self._versions(self.secrets.public_keys_secret):
            if version.name == name and version.create_time:
                created: dt.datetime = version.create_time
                return created + dt.timedelta(seconds=self.settle_seconds)
        return None

    def primary_key_id(self) -> str:
        """The key id the configured primary public version names."""
        if self._primary is None:
            self._primary = parse_public_key(*self._access(self.secrets.public_key_version)).key_id
        return self._primary

    def rotate(self, suite: str = DEFAULT_SUITE) -> Rotation:
        """Add a new primary key pair: the private half, then the public half naming it.

        Raises:
            ValueError: an unknown suite.
            google.api_core.exceptions.GoogleAPICallError: Secret Manager refused a step.
        """
        private, public = generate_key_pair(suite)
        private_version = self._add(self.secrets.private_keys_secret, private_key_payload(suite, private))
        key_id = private_version.rsplit("/", 1)[-1]
        public_version = self._add(self.secrets.public_keys_secret,
                                   public_key_payload(key_id, suite, public))
        # Read both back, as the functions will: the public key must be the private key's.
        read_public = parse_public_key(*self._access(public_version))
        read_private = parse_private_key(*self._access(private_version), key_id)
        if read_public.key_id != key_id or read_private.public != public:
            raise RuntimeError(f"key pair {key_id} did not read back consistently")
        self._primary = None
        return Rotation(key_id, suite, private_version, public_version)

    def add_log_key(self) -> str:
        """Add a version of 32 random bytes (base64) to the log key's secret; its name."""
        if self.secrets.log_key_secret is None:
            raise ClientError("Set LOG_USER_REF_KEY_VERSION.", code="missing_setting")
        return self._add(self.secrets.log_key_secret, base64.b64encode(random_bytes.token_bytes(32)))

    def add_token_id_key(self, *, replace: bool = False) -> str:
        """Add the refresh-token identifiers' key (32 random bytes, base64); its version's name.

        Raises:
            ClientError: the setting is missing, or (409) the secret has a key already and
                `replace` is not set.
        """
        secret = self.secrets.token_id_key_secret
        if secret is None:
            raise ClientError("Set REFRESH_TOKEN_ID_KEY_VERSION.", code="missing_setting")
        if not replace and any(v.state == _ENABLED for v in self._versions(secret)):
            raise ClientError(
                "The refresh-token identifier key exists already. A new version makes the stored "
                "identifiers unmatchable until each user's next sign-in: pass --replace (make "
                "create-token-id-key REPLACE=1) to do it "
                "anyway.", code="key_exists", status=409)
        return self._add(secret, base64.b64encode(random_bytes.token_bytes(32)))

    # -- Firestore --

    def _count(self, field_name: str, version: int, key_id: str, status: str | None = None) -> int:
        if self.firestore_client is None:
            assert self.project is not None, "status and retire count tokens in Firestore"
            self.firestore_client = firestore.Client(project=self.project)
        query = (self.firestore_client.collection(self.secrets.collection)
                 .where(filter=FieldFilter(f"{field_name}.v", "==", version))
                 .where(filter=FieldFilter(f"{field_name}.key_id", "==", key_id)))
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status))
        # The library annotates `count` as returning a class, and `get` as flat: it is neither.
        counted: Any = query.count(alias="n")
        result: Any = counted.get(timeout=_TIMEOUT_SECONDS)
        return int(result[0][0].value)

    def _counted(self, status: KeyStatus, version: int, key_id: str) -> KeyStatus:
        total = self._count("refresh_token", version, key_id)
        status.dead_refresh_tokens = self._count("refresh_token", version, key_id, STATUS_NEEDS_REAUTH) if total else 0
        status.refresh_tokens = total - status.dead_refresh_tokens
        status.access_tokens = self._count("access_token", version, key_id)
        return status

    # -- Reports and retirement --

    def status(self) -> list[KeyStatus]:
        """Every key, newest first within each kind, with the tokens it still opens."""
        primary = self.primary_key_id()
        suites: dict[str, str] = {}
        for version in self._versions(self.secrets.public_keys_secret):
            if version.state == _ENABLED:
                try:
                    key = parse_public_key(*self._access(version.name))
                except OfflineAccessError:
                    continue
                suites.setdefault(key.key_id, key.suite)
        keys = []
        for version in self._versions(self.secrets.private_keys_secret):
            key_id = version.name.rsplit("/", 1)[-1]
            status = KeyStatus(key_id, suites.get(key_id, "-"), version.state.name,
                               primary=key_id == primary, published=key_id in suites)
            keys.append(self._counted(status, SEALED_V2, key_id))
        if self.secrets.legacy_key_secret is not None:
            for version in self._versions(self.secrets.legacy_key_secret):
                key_id = version.name.rsplit("/", 1)[-1]
                status = KeyStatus(f"aes-{key_id}", "AES-256-GCM (v1)", version.state.name)
                keys.append(self._counted(status, SEALED_V1, key_id))
        return keys

    def retire(self, key: str, *, destroy: bool = False) -> list[str]:
        """Disable (or destroy) a key's versions; the names of the versions changed.

        Raises:
            ClientError: the key is unknown, is the primary, or still opens refresh tokens of
                users the product serves (nothing is changed then).
        """
        legacy = key.startswith("aes-")
        key_id = key.removeprefix("aes-")
        if not (key_id.isascii() and key_id.isdigit()):
            raise ClientError(f"{key!r} is not a key id (see `status`).", code="unknown_key")
        if legacy and self.secrets.legacy_key_secret is None:
            raise ClientError("TOKEN_SEALING_KEY_VERSION is not set: there are no AES keys.",
                              code="unknown_key")
        if not legacy and key_id == self.primary_key_id():
            raise ClientError(f"Key {key} is the primary: rotate first (make rotate-sealing-key).",
                              code="key_is_primary", status=409)
        settled = None if legacy else self._settled_at()
        if settled is not None and dt.datetime.now(dt.timezone.utc) < settled:
            raise ClientError(
                f"The primary key changed recently: instances may still seal new sign-ins with "
                f"key {key} until they re-read it. Try again after {settled:%Y-%m-%d %H:%M} UTC.",
                code="primary_too_recent", status=409)
        secret = self.secrets.legacy_key_secret if legacy else self.secrets.private_keys_secret
        assert secret is not None
        existing = {v.name.rsplit("/", 1)[-1]: v for v in self._versions(secret)}
        if key_id not in existing:
            raise ClientError(f"There is no key {key} (see `status`).", code="unknown_key")
        counted = self._counted(KeyStatus(key, "", ""), SEALED_V1 if legacy else SEALED_V2, key_id)
        if counted.refresh_tokens:
            raise ClientError(
                f"Key {key} still opens {counted.refresh_tokens} refresh token(s) of users the "
                "product serves. The job re-seals each user under the primary key on their next "
                "run: try again after JOB_INTERVAL_SECONDS, and check `status`.",
                code="key_in_use", status=409)
        own = existing[key_id]
        names = [] if own.state == _DESTROYED or (own.state != _ENABLED and not destroy) \
            else [str(own.name)]
        if not legacy:
            for version in self._versions(self.secrets.public_keys_secret):
                if version.state == _ENABLED:
                    try:
                        named = parse_public_key(*self._access(version.name)).key_id
                    except OfflineAccessError:
                        continue
                    if named == key_id:
                        names.append(str(version.name))
        for name in names:
            request = {"name": name}
            if destroy:
                self.secret_manager.destroy_secret_version(request=request, timeout=_TIMEOUT_SECONDS)
            else:
                self.secret_manager.disable_secret_version(request=request, timeout=_TIMEOUT_SECONDS)
        changed = names
        return changed


def from_env(env: Mapping[str, str] = os.environ) -> KeyOperations:
    """The operations for the deployment (or `make dev` stack) the environment names."""
    project = env.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if not project:
        raise ClientError("Set GOOGLE_CLOUD_PROJECT.", code="missing_setting")
    return KeyOperations(KeySecrets.from_env(env), make_client(env), project=project)


def _print_status(keys: list[KeyStatus]) -> None:
    print(f"{'key':<8} {'kind':<18} {'state':<10} {'refresh tokens':>14} {'dead':>6} "
          f"{'access tokens':>13}")
    for key in keys:
        unfinished = key.state == "ENABLED" and not key.published and not key.key.startswith("aes-")
        notes = ", ".join(n for n, on in (("primary", key.primary),
                                          ("not published: an unfinished rotation", unfinished),
                                          ("retired", key.state != "ENABLED")) if on)
        print(f"{key.key:<8} {key.kind:<18} {key.state:<10} {key.refresh_tokens:>14} "
              f"{key.dead_refresh_tokens:>6} {key.access_tokens:>13}" + (f"   {notes}" if notes else ""))


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The key commands, for this module's `main` and the CLI's `offline-access keys`."""
    commands.add_parser("status", help="each key, and how many stored tokens it still opens")
    rotate = commands.add_parser("rotate", help="add a new primary key pair")
    rotate.add_argument("--suite", choices=sorted(SUITES), default=DEFAULT_SUITE)
    retire = commands.add_parser("retire", help="disable a key no token in use needs any more")
    retire.add_argument("key", help="a key id as `status` prints it (3, aes-1)")
    retire.add_argument("--destroy", action="store_true",
                        help="destroy the versions (irreversible) instead of disabling them")
    commands.add_parser("add-log-key", help="add a version of the logs' user-reference key")
    token_ids = commands.add_parser(
        "add-token-id-key", help="create the key of the refresh-token identifiers (Cross-Account Protection)")
    token_ids.add_argument("--replace", action="store_true",
                           help="add a new version even though one exists")


def run_command(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the key command `args.command` against the deployment `env` names; the exit status."""
    try:
        operations = from_env(env)
        if args.command == "status":
            _print_status(operations.status())
        elif args.command == "rotate":
            done = operations.rotate(args.suite)
            print(f"Added key {done.key_id} ({done.suite}): private half {done.private_version}, "
                  f"public half {done.public_version}.")
            print("With TOKEN_SEALING_PUBLIC_KEY_VERSION at .../versions/latest every instance seals "
                  "with it within 10 minutes; if you pin versions, set token_sealing_public_key_version "
                  f"= \"{done.public_version.rsplit('/', 1)[-1]}\" and run make deploy.")
        elif args.command == "retire":
            for name in operations.retire(args.key, destroy=args.destroy):
                print(("destroyed " if args.destroy else "disabled ") + name)
            if args.key.startswith("aes-"):
                print("Once every aes-N key is retired, unset TOKEN_SEALING_KEY_VERSION "
                      "(token_sealing_key_version = null) and run make deploy.")
        elif args.command == "add-token-id-key":
            print(f"Added {operations.add_token_id_key(replace=args.replace)}.")
        else:
            print(f"Added {operations.add_log_key()}.")
    except OfflineAccessError as exc:
        print(f"{args.command}: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, ClientError) and exc.status == 409 else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline_access.store.sealing_keys",
        description="Token-sealing key operations (configured like the functions).")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv), os.environ)


if __name__ == "__main__":
    sys.exit(main())
