"""Command line: `python -m tools.tf_offline_plan [options] TERRAFORM_DIR`.

Exit status: 0 passed; 1 init, validate or a plan failed; 2 the cache could not be built
or an argument is wrong; 3 terraform is not installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cache import Cache, SetupError
from .check import TerraformNotFound, check, find_terraform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.tf_offline_plan",
        description="terraform init, validate and plan -refresh=false, offline, against the real "
                    "google, google-beta and archive provider schemas.")
    parser.add_argument("terraform_dir", nargs="?", type=Path, help="the configuration to check")
    parser.add_argument("--var-file", action="append", type=Path, default=[],
                        help="plan with this tfvars file (repeatable: one plan each)")
    parser.add_argument("--validate-only", action="store_true", help="init and validate, no plan")
    parser.add_argument("--build-cache", action="store_true",
                        help="only build the cache (venv, npm packages, schemas), then exit")
    parser.add_argument("--cache", type=Path, help="cache directory (default $TF_OFFLINE_PLAN_CACHE "
                        "or ~/.cache/offline-access/tf-plan)")
    parser.add_argument("--terraform", help="the terraform binary (default: terraform on PATH)")
    parser.add_argument("--full-schema", action="store_true",
                        help="serve every resource and data source type, not only those the .tf files declare")
    parser.add_argument("--verbose", action="store_true", help="also list every planned resource")
    args = parser.parse_args(argv)
    try:
        if args.build_cache:
            find_terraform(args.terraform)
            Cache(args.cache).ensure()
            return 0
        if args.terraform_dir is None:
            parser.error("TERRAFORM_DIR is required")
        if args.validate_only and args.var_file:
            parser.error("--validate-only plans nothing: drop --var-file")
        result = check(args.terraform_dir, args.var_file, plan=not args.validate_only,
                       cache=Cache(args.cache), terraform=args.terraform, full_schema=args.full_schema)
    except TerraformNotFound as error:
        print(f"tf_offline_plan: {error}", file=sys.stderr)
        return 3
    except (SetupError, FileNotFoundError, ValueError) as error:
        print(f"tf_offline_plan: {error}", file=sys.stderr)
        return 2
    if args.verbose:
        for plan in result.plans:
            print(f"== planned by {plan.name}:")
            print("\n".join(f"  {action:8} {address}" for address, action in sorted(plan.changes.items())))
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
