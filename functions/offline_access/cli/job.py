"""`offline-access job run`: run the offline job now, in this process, with the function's code.

Without options it processes the users that are due, as a scheduled run does; `--all` processes
every active user whether due or not, `--user SUB` one user (or finishes their pending
disconnect). When nobody was due it says when the next user is, and how to run now anyway.
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from typing import Any

from ..offline.run import run_offline_job, run_one_user
from .context import CliContext, env_summary


def register(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    job = groups.add_parser("job", help="run the offline job now")
    commands = job.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="process the due users now (or everyone, or one user)")
    target = run.add_mutually_exclusive_group()
    target.add_argument("--user", metavar="SUB", help="this user now, due or not")
    target.add_argument("--all", action="store_true", help="every active user now, due or not")
    run.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    run.set_defaults(run=run_job)


def run_job(args: argparse.Namespace, context: CliContext) -> int:
    deps = context.job()
    run_id = "manual-cli-" + uuid.uuid4().hex[:12]
    if args.user:
        summary = run_one_user(deps, args.user, run_id)
    else:
        summary = run_offline_job(deps, run_id, everyone=args.all)
    next_due = None if summary.processed or args.user else context.accounts().next_due_at()
    if args.json:
        body = summary.body()
        body["next_due_at"] = next_due.isoformat().replace("+00:00", "Z") if next_due else None
        context.print_json(body)
    else:
        for line in describe(summary.body(), next_due, deps.now(), env_summary(context.environ)):
            context.print(line)
    return 0 if not (summary.deferred or summary.disconnects_deferred) else 1


def describe(summary: dict[str, Any], next_due: dt.datetime | None, now: dt.datetime,
             where: str) -> list[str]:
    """A run's summary (`RunSummary.body()`) in sentences, and what to do when nobody was processed.

    `make job` prints the same sentences for the function's answer.
    """
    lines = []
    if summary.get("disconnected") or summary.get("disconnects_deferred"):
        lines.append(f"Pending disconnects: {summary.get('disconnected', 0)} finished, "
                     f"{summary.get('disconnects_deferred', 0)} left for the next run.")
    if summary["users_processed"]:
        lines.append(
            f"Processed {summary['users_processed']} user(s) in {summary['duration_seconds']:.1f} s: "
            f"{summary['succeeded']} succeeded, {summary['partial']} partly, {summary['needs_reauth']} "
            f"need to sign in again, {summary['deferred']} deferred, {summary['skipped']} skipped.")
        if summary.get("stopped"):
            lines.append(f"The run stopped early ({summary['stopped']}); the rest stay due.")
        return lines
    if summary.get("detail"):
        lines.append(f"The user was not processed: {str(summary['detail']).replace('_', ' ')}.")
        return lines
    if next_due is None:
        lines.append(f"Nobody was processed: no user has offline access in {where}. "
                     "Sign in on the page first.")
    else:
        minutes = max(0, round((next_due - now).total_seconds() / 60))
        lines.append(f"Nobody was processed: no user is due until "
                     f"{next_due.astimezone(dt.timezone.utc):%H:%M} UTC (in {minutes} min).")
        lines.append("Run everyone now: `make job ALL=1`, or `offline-access job run --all` "
                     "(one user: `offline-access job run --user SUB`).")
    return lines
