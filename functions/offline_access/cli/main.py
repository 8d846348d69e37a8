"""The `offline-access` console script: global options, the command groups, errors in sentences.

argparse (the standard library) rather than click or typer: the CLI ships inside the functions'
package, and argparse adds no dependency to it; its subparsers give the `GROUP COMMAND` shape
and `register(subparsers)` per module keeps the groups pluggable.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import Misconfigured, OfflineAccessError
from .context import CliContext

# Command groups: each a module of this package with `register(subparsers)`.
GROUPS = ("users", "job", "keys", "risc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offline-access",
        description="Operate an offline-access deployment (or make dev's local stack): its users, "
                    "its offline job, its sealing keys and its Cross-Account Protection stream.",
        epilog="Configuration comes from the functions' environment variables (docs/design.md), "
               "from the shell or --env-file: make dev writes .dev-data/cli.env; for a deployment "
               "use `terraform -chdir=terraform output -raw cli_env > deploy.env`.")
    parser.add_argument("--env-file", metavar="FILE",
                        help="KEY=VALUE settings (the shell's variables win)")
    parser.add_argument("--quiet", action="store_true", help="do not print the log lines")
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    for name in GROUPS:
        importlib.import_module(f"{__package__}.{name}").register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        context = CliContext.from_files(args.env_file, quiet=args.quiet)
        status: int = args.run(args, context)
        return status
    except Misconfigured as exc:
        sys.stderr.write(f"offline-access: {exc.fix}\n")
        return 2
    except OfflineAccessError as exc:
        sys.stderr.write(f"offline-access: {exc.message}\n")
        return 3


if __name__ == "__main__":
    sys.exit(main())
