"""Offline `terraform init`, `validate` and `plan` against the real provider schemas.

`terraform init` cannot download providers where only PyPI and the npm registry are reachable.
This check serves the real schemas of hashicorp/google, google-beta (6.50.0) and archive (2.7.1),
rebuilt from the npm packages cdktf generated from them, through a schema-only provider plugin
written with the `tf` package (PyPI), from a filesystem mirror. The real terraform CLI then checks
the configuration as it would with the real providers, short of what those validate in Go and
what only the API knows. See README.md next to this file.

    from tools.tf_offline_plan import check
    result = check(Path("terraform"), [Path("terraform/terraform.tfvars.example")])
"""

from .cache import Cache, SetupError
from .check import Diagnostic, Plan, Result, Step, TerraformNotFound, check, copy_tree, find_terraform

__all__ = ["Cache", "Diagnostic", "Plan", "Result", "SetupError", "Step", "TerraformNotFound", "check",
           "copy_tree", "find_terraform"]
