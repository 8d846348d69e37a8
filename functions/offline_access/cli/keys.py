"""`offline-access keys`: the token-sealing key operations (`store.sealing_keys`).

`keys status` lists each key and how many stored tokens it still opens; `keys rotate` adds a new
primary key pair; `keys retire KEY` takes a key out of use (refused while tokens in use need
it); `keys add-log-key` adds a version of the logs' user-reference key; `keys add-token-id-key`
creates the key of the refresh-token identifiers that Cross-Account Protection matches. The Makefile's key
targets (`make rotate-sealing-key` and friends) run the same code.
"""

from __future__ import annotations

import argparse

from ..store import sealing_keys
from .context import CliContext


def register(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = groups.add_parser("keys", help="rotate, report and retire the token-sealing keys")
    commands = keys.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sealing_keys.add_commands(commands)
    keys.set_defaults(run=run_keys)


def run_keys(args: argparse.Namespace, context: CliContext) -> int:
    return sealing_keys.run_command(args, context.environ)
