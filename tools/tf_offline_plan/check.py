"""Run the real `terraform init`, `validate` and `plan` on a configuration, offline.

The configuration's repository is copied to a temporary directory (so `${path.module}/../x`
resolves, and nothing is written to the original); `terraform init` installs the schema-only
providers from a filesystem mirror written next to the copy; `validate` and
`plan -refresh=false` (from an empty local state, one plan per tfvars file) then run against
them. Diagnostics and plan figures are read from terraform's `-json` output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .cache import PROVIDER_SCRIPT, BuiltCache, Cache

# Never copied: virtualenvs, dependencies, terraform's working data, state.
_SKIPPED_DIRS = {".git", "node_modules", ".terraform"}
_SKIPPED_PREFIXES = (".venv",)
OVERRIDE_FILE = "zz_tf_offline_plan_override.tf"


class TerraformNotFound(Exception):
    """No terraform binary: the offline check cannot run (terraform is not a Debian package)."""


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    where: str = ""
    # The values terraform shows under the source line, e.g. 'var.region is "x"'.
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f"{self.severity.capitalize()}: {self.summary}"]
        if self.where:
            lines.append(f"  on {self.where}")
        lines += [f"    {value}" for value in self.values]
        if self.detail:
            lines += ["  " + line for line in self.detail.splitlines()]
        return "\n".join(lines)


@dataclass
class Step:
    """One terraform command: init, validate, or the plan of one tfvars file."""

    name: str
    ok: bool
    seconds: float
    diagnostics: list[Diagnostic] = field(default_factory=list)
    output: str = ""

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


@dataclass
class Plan(Step):
    var_file: Path | None = None
    add: int = 0
    change: int = 0
    destroy: int = 0
    # Address -> action ("create", ...) of every planned resource change.
    changes: dict[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return f"Plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy."


@dataclass
class Result:
    steps: list[Step]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def plans(self) -> list[Plan]:
        return [step for step in self.steps if isinstance(step, Plan)]

    def step(self, name: str) -> Step:
        return next(step for step in self.steps if step.name == name)

    def diagnostics(self) -> list[Diagnostic]:
        return [d for step in self.steps for d in step.diagnostics]

    def report(self) -> str:
        lines = []
        for step in self.steps:
            lines.append(f"== terraform {step.name}: {'ok' if step.ok else 'FAILED'} ({step.seconds:.1f} s)")
            if isinstance(step, Plan) and step.ok:
                lines.append(step.summary)
            lines += [str(d) for d in step.diagnostics]
            if not step.ok and not step.diagnostics and step.output:
                lines.append(step.output.strip()[-3000:])
        verdict = "PASS" if self.ok else "FAIL"
        figures = "; ".join(p.summary for p in self.plans if p.ok)
        lines.append(f"tf_offline_plan: {verdict} ({figures + '; ' if figures else ''}{self.seconds:.1f} s)")
        return "\n".join(lines)


def find_terraform(explicit: str | None = None) -> str:
    candidate = explicit or os.environ.get("TF_OFFLINE_PLAN_TERRAFORM") or "terraform"
    found = shutil.which(candidate)
    if not found:
        raise TerraformNotFound(
            f"{candidate} is not installed: the offline terraform validate/plan check needs the "
            "terraform CLI (https://developer.hashicorp.com/terraform/install; it is not a Debian package)")
    return found


def repository_root(terraform_dir: Path) -> Path:
    """The git work tree holding terraform_dir, else its parent directory."""
    result = subprocess.run(["git", "-C", str(terraform_dir), "rev-parse", "--show-toplevel"],
                            capture_output=True, text=True, check=False)
    if result.returncode == 0 and result.stdout.strip():
        return Path(result.stdout.strip()).resolve()
    return terraform_dir.resolve().parent


def copy_tree(root: Path, destination: Path) -> None:
    """Copy root to destination: git's tracked and untracked-but-not-ignored files when root is
    a git work tree (so git-ignored terraform.tfvars and state stay behind), else every file;
    never virtualenvs, node_modules, .terraform or state files."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-c", "-o", "--exclude-standard"],
                            capture_output=True, check=False)
    inside_git = listed.returncode == 0 and _is_toplevel(root)
    if inside_git:
        files = [Path(f) for f in listed.stdout.decode().split("\0") if f]
    else:
        files = [p.relative_to(root) for p in root.rglob("*") if p.is_file() or p.is_symlink()]
    for relative in files:
        parts = relative.parts
        if any(p in _SKIPPED_DIRS or p.startswith(_SKIPPED_PREFIXES) for p in parts[:-1]):
            continue
        if ".tfstate" in parts[-1] or parts[-1] == ".terraform.lock.hcl":
            continue
        source = root / relative
        if not source.exists():  # tracked but deleted in the work tree
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def _is_toplevel(root: Path) -> bool:
    result = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                            capture_output=True, text=True, check=False)
    return result.returncode == 0 and Path(result.stdout.strip()).resolve() == root.resolve()


def _platform(terraform: str) -> str:
    result = subprocess.run([terraform, "version", "-json"], capture_output=True, text=True, check=False,
                            env=_environment(None))
    try:
        return json.loads(result.stdout)["platform"]
    except (ValueError, KeyError) as error:
        raise RuntimeError(f"cannot tell the platform of {terraform} (terraform version -json)") from error


_TYPE_DECLARATION = re.compile(r'^\s*(?:resource|data|ephemeral)\s+"([A-Za-z0-9_-]+)"', re.M)


def declared_types(tree: Path) -> list[str] | None:
    """Every resource, data source and ephemeral type the .tf files under tree declare
    (None when the tree has .tf.json files, which this scan does not read: serve every type)."""
    if any(tree.rglob("*.tf.json")):
        return None
    types: set[str] = set()
    for path in tree.rglob("*.tf"):
        types.update(_TYPE_DECLARATION.findall(path.read_text(encoding="utf-8", errors="replace")))
    return sorted(types)


def write_mirror(work: Path, built: BuiltCache, platform: str, types: list[str] | None) -> Path:
    """A filesystem mirror offering each schema-only provider, and a CLI config using only it.

    Each "provider" is a small wrapper that runs provider.py with the cache's Python; it records
    its process id, so that a provider terraform left running can be stopped afterwards. With
    types, the providers serve only those resource and data source types.
    """
    mirror = work / "mirror"
    includes = []
    types_file = work / "types.json"
    if types is not None:
        types_file.write_text(json.dumps(types), encoding="utf-8")
    for provider in built.providers:
        directory = mirror / provider.address / provider.version / platform
        directory.mkdir(parents=True)
        wrapper = directory / f"terraform-provider-{provider.type}_v{provider.version}"
        environment = {"OFFLINE_PLAN_SCHEMA": provider.compiled, "OFFLINE_PLAN_PROVIDER": provider.address,
                       "HOME": built.home}
        if types is not None:
            environment["OFFLINE_PLAN_TYPES"] = types_file
        wrapper.write_text(
            "#!/bin/sh\n"
            f"# Schema-only {provider.address} {provider.version}, written by tools/tf_offline_plan.\n"
            f'echo $$ >> {shlex.quote(str(work / "pids"))}\n'
            + "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in environment.items())
            + f'exec {shlex.quote(str(built.python))} -I {shlex.quote(str(PROVIDER_SCRIPT))} "$@"\n',
            encoding="utf-8")
        wrapper.chmod(0o755)
        includes.append(json.dumps(provider.address))
    config = work / "terraformrc"
    config.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        f"    include = [{', '.join(includes)}]\n"
        "  }\n"
        "}\n", encoding="utf-8")
    return config


def _environment(cli_config: Path | None) -> dict[str, str]:
    # No TF_* setting of the caller's (TF_VAR_*, TF_CLI_ARGS*, TF_DATA_DIR, a plugin cache...)
    # reaches these commands: the result depends on the configuration and the tfvars only.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    if cli_config is not None:
        env["TF_CLI_CONFIG_FILE"] = str(cli_config)
    return env


def _diagnostic(raw: dict) -> Diagnostic:
    where = ""
    if span := raw.get("range"):
        where = f"{span.get('filename', '?')} line {span.get('start', {}).get('line', '?')}"
    elif address := raw.get("address"):
        where = address
    values = tuple(f"{v.get('traversal', '')} {v.get('statement', '')}".strip()
                   for v in (raw.get("snippet") or {}).get("values", []))
    return Diagnostic(raw.get("severity", "error"), raw.get("summary", ""), raw.get("detail", ""), where, values)


def _json_lines(text: str) -> list[dict]:
    messages = []
    for line in text.splitlines():
        try:
            messages.append(json.loads(line))
        except ValueError:
            continue
    return messages


class _Terraform:
    def __init__(self, binary: str, cwd: Path, env: dict[str, str]) -> None:
        self.binary, self.cwd, self.env = binary, cwd, env

    def run(self, *args: str) -> tuple[int, str, float]:
        started = time.monotonic()
        result = subprocess.run([self.binary, *args], cwd=self.cwd, env=self.env, capture_output=True,
                                text=True, check=False, timeout=600)
        return result.returncode, result.stdout + result.stderr, time.monotonic() - started

    def init(self) -> Step:
        code, output, seconds = self.run("init", "-input=false", "-no-color")
        diagnostics = [] if code == 0 else [Diagnostic("error", "terraform init failed", output.strip()[-3000:])]
        return Step("init", code == 0, seconds, diagnostics, output)

    def validate(self) -> Step:
        code, output, seconds = self.run("validate", "-json", "-no-color")
        try:
            report = json.loads(output[output.index("{"):])
            diagnostics = [_diagnostic(d) for d in report.get("diagnostics", [])]
            valid = bool(report.get("valid")) and code == 0
        except ValueError:
            diagnostics, valid = [Diagnostic("error", "terraform validate failed", output.strip()[-3000:])], False
        return Step("validate", valid, seconds, diagnostics, output)

    def plan(self, var_file: Path | None) -> Plan:
        args = ["plan", "-json", "-input=false", "-refresh=false", "-lock=false", "-no-color"]
        if var_file is not None:
            args.append(f"-var-file={var_file}")
        code, output, seconds = self.run(*args)
        plan = Plan(f"plan -var-file={var_file.name}" if var_file else "plan", code == 0, seconds,
                    output=output, var_file=var_file)
        for message in _json_lines(output):
            kind = message.get("type")
            if kind == "diagnostic":
                plan.diagnostics.append(_diagnostic(message.get("diagnostic", {})))
            elif kind == "planned_change":
                change = message.get("change", {})
                plan.changes[change.get("resource", {}).get("addr", "?")] = change.get("action", "?")
            elif kind == "change_summary":
                summary = message.get("changes", {})
                plan.add, plan.change, plan.destroy = summary.get("add", 0), summary.get("change", 0), \
                    summary.get("remove", 0)
        if code != 0 and not plan.errors:
            plan.diagnostics.append(Diagnostic("error", "terraform plan failed", output.strip()[-3000:]))
        return plan


def _stop_leftover_providers(pids_file: Path) -> None:
    """Stop provider processes this run started that terraform left running (by their id)."""
    if not pids_file.exists():
        return
    for line in pids_file.read_text().split():
        pid = int(line)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        if str(PROVIDER_SCRIPT).encode() in command:
            os.kill(pid, signal.SIGTERM)


def check(terraform_dir: Path, var_files: Sequence[Path] = (), *, root: Path | None = None,
          plan: bool = True, cache: Cache | None = None, terraform: str | None = None,
          full_schema: bool = False) -> Result:
    """init, validate and (when plan and validate passed) one plan per var file (none: one plan
    with no -var-file; plan=False: validate only) of terraform_dir, offline.

    root is the tree to copy (default: the git work tree holding terraform_dir). The providers
    serve only the types the copy's .tf files declare, unless full_schema: the verdict is the
    same, and terraform spends most of its time decoding schemas otherwise.
    """
    started = time.monotonic()
    binary = find_terraform(terraform)
    terraform_dir = terraform_dir.resolve()
    root = (root or repository_root(terraform_dir)).resolve()
    if terraform_dir != root and root not in terraform_dir.parents:
        raise ValueError(f"{root} does not contain {terraform_dir}")
    var_files = [Path(v).resolve() for v in var_files]
    for var_file in var_files:
        if not var_file.is_file():
            raise FileNotFoundError(f"no tfvars file {var_file}")
    built = (cache or Cache()).ensure()
    with tempfile.TemporaryDirectory(prefix="tf-offline-plan-") as temporary:
        work = Path(temporary)
        copy_tree(root, work / "src")
        module = work / "src" / terraform_dir.relative_to(root)
        # A local backend, whatever the configuration declares: the plan starts from an empty state.
        (module / OVERRIDE_FILE).write_text(
            "# Written by tools/tf_offline_plan in its temporary copy.\n"
            f'terraform {{\n  backend "local" {{\n    path = {json.dumps(str(work / "terraform.tfstate"))}\n  }}\n}}\n',
            encoding="utf-8")
        types = None if full_schema else declared_types(work / "src")
        config = write_mirror(work, built, _platform(binary), types)
        tf = _Terraform(binary, module, _environment(config))
        try:
            steps: list[Step] = [tf.init()]
            if steps[-1].ok:
                steps.append(tf.validate())
            if steps[-1].ok and plan:
                steps += [tf.plan(v) for v in var_files] if var_files else [tf.plan(None)]
        finally:
            _stop_leftover_providers(work / "pids")
    return Result(steps, time.monotonic() - started)
