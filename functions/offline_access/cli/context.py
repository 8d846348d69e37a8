"""What every command works with: the configuration, the stores, the job's dependencies, output.

The CLI reads the functions' own environment variables (`docs/design.md`), from the shell or
from an env file (`KEY=VALUE` lines; `make dev` writes `.dev-data/cli.env`, and Terraform's
`cli_env` output is one for a deployment); variables set in the shell win over the file. With
the emulator variables it works against `make dev`; without them, against the project in
`GOOGLE_CLOUD_PROJECT` with Application Default Credentials (`gcloud auth application-default
login`), like any Google Cloud client library.

Commands that only read users need `GOOGLE_CLOUD_PROJECT` (and `USERS_COLLECTION` if it is not
`users`); `users disconnect` and `job run` open tokens and call Google, so they need the whole
configuration of the job.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError
from ..offline.context import JobDependencies
from ..store import users as user_store
from ..store.accounts import AccountStore
from ..store.security_events import SecurityEventStore


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines (blank lines and `#` comments ignored; values may be quoted).

    Raises:
        ConfigError: the file cannot be read or a line is not `KEY=VALUE`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the env file {path}: {exc.strerror}.") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path}:{number} is not a KEY=VALUE line.")
        values[key.strip()] = value.strip().strip("'\"")
    return values


class CliContext:
    """The environment of one command, and what it builds from it (once each)."""

    def __init__(self, environ: MutableMapping[str, str], *, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.environ = environ
        self.out = out
        self.err = err
        self.quiet = quiet
        self._store: user_store.UserStore | None = None
        self._accounts: AccountStore | None = None
        self._job: JobDependencies | None = None

    @classmethod
    def from_files(cls, env_file: str | None, **kwargs: Any) -> CliContext:
        """The process environment over an env file's values. The client libraries read the
        emulator variables from the process environment, so the merge is written back to it."""
        if env_file:
            for key, value in read_env_file(Path(env_file)).items():
                os.environ.setdefault(key, value)
        return cls(os.environ, **kwargs)

    def project(self) -> str:
        project = self.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
        if not project:
            raise ConfigError("Set GOOGLE_CLOUD_PROJECT, or pass --env-file (see the README's "
                              "\"Users and accounts\").")
        return project

    def _users(self) -> user_store.UserStore:
        if self._store is None:
            collection = self.environ.get("USERS_COLLECTION", "").strip() or "users"
            self._store = user_store.UserStore(user_store.make_client(self.project()), collection)
        return self._store

    def accounts(self) -> AccountStore:
        """The users collection, for the commands that only read or list."""
        if self._accounts is None:
            self._accounts = AccountStore(self._users())
        return self._accounts

    def security_events(self) -> SecurityEventStore:
        """The RISC receiver's records of the security events it received."""
        return SecurityEventStore(self._users())

    def job(self) -> JobDependencies:
        """The offline job's dependencies, as the function builds them; logs go to stderr."""
        if self._job is None:
            from .. import wiring  # imported late: only the commands that act need it

            deps = wiring.build_job_dependencies(self.environ)
            deps.log_stream = io.StringIO() if self.quiet else self.err
            self._job = deps
        return self._job

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def print_json(self, value: Any) -> None:
        self.out.write(json.dumps(value, indent=2, default=str) + "\n")

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A plain text table, columns as wide as their widest cell."""
        cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            self.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def confirm(context: CliContext, question: str, answer: str, stdin: TextIO | None = None) -> bool:
    """Ask on the terminal; True only when the person types `answer`. Never asks a non-terminal."""
    source = stdin or sys.stdin
    if not source.isatty():
        return False
    context.err.write(f"{question} Type {answer!r} to go on: ")
    context.err.flush()
    return source.readline().strip() == answer


def env_summary(environ: Mapping[str, str]) -> str:
    """Where the command is pointed, for messages: the emulator or the project."""
    if environ.get("FIRESTORE_EMULATOR_HOST"):
        return f"the Firestore emulator at {environ['FIRESTORE_EMULATOR_HOST']}"
    return f"project {environ.get('GOOGLE_CLOUD_PROJECT', '?')}"
