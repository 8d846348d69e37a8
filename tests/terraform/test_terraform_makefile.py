"""terraform/terraform.mk: the targets, and the secret targets run against fake tools.

The fakes stand in for `terraform output -raw` and `gcloud secrets versions add`; gcloud
records its arguments and its standard input, so the tests can show that a secret travels
through stdin only, never through argv or the terminal output. The key operations run for real
(`python -m offline_access.store.sealing_keys`) against a local Secret Manager.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from localdev.local_secret_manager import LocalSecretManager
from tools.tf_offline_plan import copy_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
FRAGMENT = REPO_ROOT / "terraform" / "terraform.mk"
TARGETS = ("deploy", "destroy", "set-client-secret", "rotate-sealing-key", "sealing-key-status",
           "retire-sealing-key", "rotate-log-key", "rotate-session-key", "create-token-id-key",
           "lint-tf", "test-tf", "tf-offline-cache")
LEAD_OWNED = ("test", "dev", "bench")
SECRET = "GOCSPX-canary-secret-for-make"
PUBLIC_KEYS = "projects/demo-project/secrets/offline-access-token-sealing-public-keys"
PRIVATE_KEYS = "projects/demo-project/secrets/offline-access-token-sealing-private-keys"
LOG_KEY = "projects/demo-project/secrets/offline-access-log-user-ref-key"
TOKEN_ID_KEY = "projects/demo-project/secrets/offline-access-refresh-token-id-key"
KEYS_ENV = {"GOOGLE_CLOUD_PROJECT": "demo-project",
            "TOKEN_SEALING_PUBLIC_KEY_VERSION": f"{PUBLIC_KEYS}/versions/latest",
            "TOKEN_SEALING_PRIVATE_KEYS_SECRET": PRIVATE_KEYS,
            "LOG_USER_REF_KEY_VERSION": f"{LOG_KEY}/versions/latest"}

needs_make = pytest.mark.skipif(not (shutil.which("make") and shutil.which("bash")),
                                reason="GNU make and bash are needed")


def write_tool(path: Path, body: str) -> Path:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    record.mkdir()
    keys_env = " ".join(f"{k}={v}" for k, v in KEYS_ENV.items())
    outputs = {"project_id": "demo-project",
               "oauth_client_secret_id": "offline-access-oauth-client-secret",
               "token_sealing_key_secret_id": "offline-access-token-sealing-key",
               "oauth_javascript_origin": "https://demo-project-signin.web.app",
               "page_url": "https://demo-project-signin.web.app/",
               "session_key_secret_id": "offline-access-session-key",
               "key_operations_env": keys_env}
    cases = "\n".join(f'  {k}) printf %s "{v}" ;;' for k, v in outputs.items())
    # init and apply are recorded; `output -raw NAME` answers from the table above, or from
    # record/output-NAME when a test writes one (an empty file: an empty output).
    terraform = write_tool(bin_dir / "terraform", f"""
case " $* " in
  *" init "*|*" apply "*) printf '%s\\n' "$*" >> "{record}/terraform-calls"; exit 0 ;;
esac
[ -f "{record}/no-state" ] && {{ echo "No outputs found" >&2; exit 1; }}
name="${{@: -1}}"
[ -f "{record}/output-$name" ] && {{ cat "{record}/output-$name"; exit 0; }}
case "$name" in
{cases}
  *) echo "unknown output $name" >&2; exit 1 ;;
esac
""")
    write_tool(bin_dir / "gcloud", f"""
printf '%s\\n' "$@" > "{record}/gcloud-args"
cat > "{record}/gcloud-stdin"
echo "projects/123/secrets/x/versions/7"
""")
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"include {FRAGMENT}\n")
    return {"bin": bin_dir, "record": record, "terraform": terraform, "makefile": makefile}


def make(tools: dict[str, Path], target: str, stdin: str = "", environ: dict[str, str] | None = None,
         **variables: str):
    env = dict(os.environ, PATH=f"{tools['bin']}:{os.environ['PATH']}", **(environ or {}))
    args = ["make", "--no-print-directory", "-f", str(tools["makefile"]), target,
            f"TF_BIN={tools['terraform']}"] + [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(args, cwd=REPO_ROOT, input=stdin, capture_output=True, text=True,
                          env=env, timeout=60, check=False)


#-- Structure --#


def _rules(text: str) -> dict[str, int]:
    """Target -> line number of its first rule (a target-specific variable line counts)."""
    rules: dict[str, int] = {}
    for match in re.finditer(r"^([a-z][a-z0-9-]*):(?!=)", text, re.M):
        rules.setdefault(match.group(1), text[:match.start()].count("\n"))
    return rules


def test_fragment_defines_the_targets_with_phony_and_a_comment():
    text = FRAGMENT.read_text()
    lines = text.splitlines()
    rules = _rules(text)
    for target in TARGETS:
        assert re.search(rf"^\.PHONY: {re.escape(target)}$", text, re.M), f"{target} is not .PHONY"
        assert target in rules, f"target {target} is missing"
        above = [line for line in lines[:rules[target]]
                 if not line.startswith((".PHONY", "$(TF_BASH_TARGETS):"))][-1]
        assert above.startswith("# "), f"{target} has no # comment above it"


def test_fragment_leaves_the_lead_targets_and_variables_alone():
    text = FRAGMENT.read_text()
    for target in LEAD_OWNED:
        assert not re.search(rf"^{target}:", text, re.M), f"terraform.mk defines {target}"
    for name in re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?|:|\+)?=", text, re.M):
        # CHECKOV: the name the top-level Makefile gives the checkov file target.
        assert name.startswith("TF_") or name == "CHECKOV", f"variable {name} is not prefixed TF_"
    assert re.search(r"^CHECKOV\s*\?=", text, re.M), "CHECKOV must not override the lead's value"


def test_checkov_virtualenv_is_a_file_target_from_the_pinned_requirements():
    text = FRAGMENT.read_text()
    assert "TF_CHECKOV         ?= $(TF_CHECKOV_VENV)/bin/checkov" in text
    assert re.search(r"^\$\(TF_CHECKOV\): \$\(TF_CHECKOV_REQS\)$", text, re.M)
    assert re.search(r"^test-tf: \$\(TF_CHECKOV\) \$\(TF_PY_DEPS\) tf-offline-cache$", text, re.M)
    pins = (REPO_ROOT / "terraform" / "requirements-checkov.txt").read_text()
    assert re.search(r"^checkov==\d+\.\d+\.\d+$", pins, re.M)


#-- Secret targets --#


@needs_make
def test_set_client_secret_sends_the_secret_on_stdin_only(tools):
    result = make(tools, "set-client-secret", stdin=SECRET + "\n")

    assert result.returncode == 0, result.stderr
    args = (tools["record"] / "gcloud-args").read_text().splitlines()
    assert args == ["secrets", "versions", "add", "offline-access-oauth-client-secret",
                    "--project=demo-project", "--data-file=-", "--format=value(name)"]
    assert (tools["record"] / "gcloud-stdin").read_text() == SECRET  # no trailing newline
    assert SECRET not in result.stdout + result.stderr


@needs_make
def test_set_client_secret_refuses_empty_input(tools):
    result = make(tools, "set-client-secret", stdin="\n")

    assert result.returncode != 0
    assert "Empty input" in result.stderr
    assert not (tools["record"] / "gcloud-args").exists()


@pytest.fixture
def secret_manager():
    server = LocalSecretManager().start()
    for secret in (PUBLIC_KEYS, PRIVATE_KEYS, LOG_KEY, TOKEN_ID_KEY):
        server.create_secret(secret)
    yield server
    server.stop()


@needs_make
def test_rotate_sealing_key_adds_a_key_pair_in_step(tools, secret_manager):
    emulator = {"SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port}
    private_keys = []
    for key_id in ("1", "2"):
        result = make(tools, "rotate-sealing-key", environ=emulator)
        assert result.returncode == 0, result.stderr
        assert f"Added key {key_id} (MLKEM768_X25519)" in result.stdout
        public = json.loads(secret_manager.payload(f"{PUBLIC_KEYS}/versions/{key_id}"))
        private = json.loads(secret_manager.payload(f"{PRIVATE_KEYS}/versions/{key_id}"))
        # The public half names the private half's version: the key id.
        assert public["key_id"] == key_id and public["suite"] == private["suite"]
        assert len(base64.b64decode(private["private_key"])) == 96
        assert private["private_key"] not in result.stdout + result.stderr
        private_keys.append(private["private_key"])
    assert private_keys[0] != private_keys[1]
    assert not (tools["record"] / "gcloud-args").exists()  # no key ever passes through argv


@needs_make
def test_the_key_pairs_suite_can_be_chosen(tools, secret_manager):
    result = make(tools, "rotate-sealing-key", SUITE="X25519",
                  environ={"SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port})
    assert result.returncode == 0, result.stderr
    assert json.loads(secret_manager.payload(f"{PUBLIC_KEYS}/versions/1"))["suite"] == "X25519"


@needs_make
def test_rotate_log_key_adds_32_random_bytes(tools, secret_manager):
    result = make(tools, "rotate-log-key",
                  environ={"SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port})
    assert result.returncode == 0, result.stderr
    key = secret_manager.payload(f"{LOG_KEY}/versions/1")
    assert len(base64.b64decode(key, validate=True)) == 32 and key.decode() not in result.stdout


@needs_make
def test_create_token_id_key_adds_32_random_bytes_once(tools, secret_manager):
    # With risc_enabled, key_operations_env names the key (Terraform's output).
    (tools["record"] / "output-key_operations_env").write_text(" ".join(
        f"{k}={v}" for k, v in {**KEYS_ENV, "REFRESH_TOKEN_ID_KEY_VERSION": f"{TOKEN_ID_KEY}/versions/latest"}.items()))
    emulator = {"SECRET_MANAGER_EMULATOR_HOST": secret_manager.host_port}

    first = make(tools, "create-token-id-key", environ=emulator)
    again = make(tools, "create-token-id-key", environ=emulator)
    replaced = make(tools, "create-token-id-key", REPLACE="1", environ=emulator)

    assert first.returncode == 0, first.stderr
    key = secret_manager.payload(f"{TOKEN_ID_KEY}/versions/1")
    assert len(base64.b64decode(key, validate=True)) == 32 and key.decode() not in first.stdout
    # A second version would leave the stored identifiers unmatched: refused unless asked.
    assert again.returncode == 2 and "--replace" in again.stderr
    assert replaced.returncode == 0 and secret_manager.payload(f"{TOKEN_ID_KEY}/versions/2") != key


@needs_make
def test_retire_sealing_key_needs_a_key(tools):
    result = make(tools, "retire-sealing-key")
    assert result.returncode != 0 and "KEY=N" in result.stderr


@needs_make
def test_rotate_session_key_adds_32_random_bytes(tools):
    keys = []
    for _ in range(2):
        result = make(tools, "rotate-session-key")
        assert result.returncode == 0, result.stderr
        args = (tools["record"] / "gcloud-args").read_text().splitlines()
        assert args[:4] == ["secrets", "versions", "add", "offline-access-session-key"]
        assert "--data-file=-" in args and "--project=demo-project" in args
        key = (tools["record"] / "gcloud-stdin").read_text()
        assert len(key) == 44 and len(base64.b64decode(key, validate=True)) == 32
        assert key not in result.stdout + result.stderr
        keys.append(key)
    assert keys[0] != keys[1]


@needs_make
@pytest.mark.parametrize("target", ["set-client-secret", "rotate-sealing-key", "sealing-key-status",
                                    "rotate-log-key", "rotate-session-key"])
def test_secret_targets_need_a_deployment(tools, target):
    (tools["record"] / "no-state").touch()

    result = make(tools, target, stdin=SECRET + "\n")

    assert result.returncode != 0
    assert "run make deploy first" in result.stderr
    assert not (tools["record"] / "gcloud-args").exists()


#-- deploy --#


@pytest.fixture
def tfvars(tmp_path: Path) -> Path:
    path = tmp_path / "deploy.tfvars"
    path.write_text('project_id = "demo-project"\n')
    return path


@needs_make
@pytest.mark.parametrize("unpinned", [
    "oauth_client_secret_version token_sealing_key_version",
    "token_sealing_key_version",
])
def test_deploy_warns_while_a_secret_version_is_latest(tools, tfvars, unpinned):
    (tools["record"] / "output-unpinned_secret_versions").write_text(unpinned)

    result = make(tools, "deploy", TF_VARS=str(tfvars))

    assert result.returncode == 0, result.stderr
    calls = (tools["record"] / "terraform-calls").read_text()
    assert "init -input=false" in calls and f"apply -input=false -var-file={tfvars}" in calls
    warning = result.stderr[result.stderr.index("WARNING"):]
    names = unpinned.split()
    assert warning.startswith(f"WARNING: {' and '.join(names)} {'is' if len(names) == 1 else 'are'} still \"latest\".")
    for name in names:
        assert f'    {name} = "1"' in warning, "the warning shows the line to add"
    assert str(tfvars) in warning and "make deploy again" in warning
    for name in {"oauth_client_secret_version", "token_sealing_key_version"} - set(names):
        assert name not in warning
    assert "WARNING" not in result.stdout, "warnings go to stderr"


@needs_make
def test_deploy_is_quiet_once_both_versions_are_pinned(tools, tfvars):
    (tools["record"] / "output-unpinned_secret_versions").write_text("")

    result = make(tools, "deploy", TF_VARS=str(tfvars))

    assert result.returncode == 0, result.stderr
    assert "Sign-in page: https://demo-project-signin.web.app/" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@needs_make
def test_deploy_needs_a_tfvars_file(tools, tmp_path):
    result = make(tools, "deploy", TF_VARS=str(tmp_path / "missing.tfvars"))

    assert result.returncode != 0
    assert "copy terraform/terraform.tfvars.example" in result.stderr
    assert not (tools["record"] / "terraform-calls").exists()


#-- lint-tf --#


@needs_make
def test_lint_tf_without_terraform_says_so(tools, tmp_path):
    result = make(tools, "lint-tf", TF_BIN=str(tmp_path / "no-such-terraform"))

    assert result.returncode == 0
    assert "is not installed: fmt and validate skipped" in result.stdout


def _real_terraform() -> str:
    found = shutil.which("terraform")
    if not found:
        pytest.skip("terraform is not installed: lint-tf's offline validate cannot run")
    return found


@needs_make
def test_lint_tf_formats_and_validates_offline(tools):
    result = make(tools, "lint-tf", TF_BIN=_real_terraform())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "terraform fmt -check passed" in result.stdout
    assert "== terraform validate: ok" in result.stdout
    assert "tf_offline_plan: PASS" in result.stdout


@needs_make
@pytest.mark.parametrize("breakage, message", [
    ("no_such_argument = 1", "Unsupported argument"),  # validate's finding
    ("no_such_argument   = 1", "fmt -recursive"),      # fmt's, before validate runs
])
def test_lint_tf_fails_on_a_broken_configuration(tools, tmp_path, breakage, message):
    terraform = _real_terraform()
    copy_tree(REPO_ROOT, tmp_path / "repo")
    scratch = tmp_path / "repo" / "terraform"
    iam = scratch / "iam.tf"
    iam.write_text(iam.read_text().replace('resource "google_service_account" "job" {\n',
                                           f'resource "google_service_account" "job" {{\n  {breakage}\n\n', 1))

    result = make(tools, "lint-tf", TF_BIN=terraform, TF_DIR=str(scratch))

    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@needs_make
@pytest.mark.parametrize("paused", ["true", "false"])
def test_deploy_says_how_to_unpause_the_job_after_the_first_deployment(tools, tmp_path, paused):
    terraform = write_tool(tools["bin"] / "terraform-deploy", f"""
case " $* " in
  *" output "*) case "${{@: -1}}" in
      job_paused) printf %s "{paused}" ;;
      *) printf %s "value-of-${{@: -1}}" ;;
    esac ;;
  *) exit 0 ;;  # init and apply
esac
""")
    tfvars = tmp_path / "terraform.tfvars"
    tfvars.write_text('project_id = "demo-project"\n')

    result = make(tools, "deploy", TF_BIN=str(terraform), TF_VARS=str(tfvars))

    assert result.returncode == 0, result.stderr
    told = "job_paused = false" in result.stdout and "make rotate-session-key" in result.stdout
    assert told is (paused == "true")
