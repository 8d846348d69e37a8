"""checkov over `terraform/`: no failed check, and every skip justified on its own resource.

checkov runs from its own virtualenv (`.venv-checkov`, pinned in terraform/requirements-checkov.txt):
it pins many packages and ships an `hcl2` module that clashes with python-hcl2. `make test-tf`
creates that virtualenv first; on a fresh checkout these tests create it themselves (once,
under a file lock, so parallel pytest-xdist workers do not race).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Creating the virtualenv downloads checkov: allow for it on a fresh machine.
pytestmark = [pytest.mark.timeout(1200), pytest.mark.xdist_group("checkov")]

# The skips that were reviewed, with the reason on each resource. A new skip must be added
# here on purpose; a skip on the scheduled function would defeat its invariants.
REVIEWED_SKIPS = {
    ("CKV_GCP_62", "google_storage_bucket.functions_source"),
    ("CKV_GCP_62", "google_storage_bucket.gcf_sources[0]"),
    ("CKV_GCP_84", "google_artifact_registry_repository.functions"),
    ("CKV_GCP_124", "google_cloudfunctions2_function.exchange"),
    ("CKV_GCP_102", "google_cloud_run_service_iam_member.exchange_public"),
    # The account API is public behind Hosting, like the exchange.
    ("CKV_GCP_124", "google_cloudfunctions2_function.account"),
    ("CKV_GCP_102", "google_cloud_run_service_iam_member.account_public"),
    # Called by another Cloud Run service, which is not "internal" traffic without a VPC
    # connector: IAM (run.invoker for the account API only) is its gate.
    ("CKV_GCP_124", "google_cloudfunctions2_function.disconnect"),
    # Work messages hold a run id and user ids, no token: Google-managed encryption.
    ("CKV_GCP_83", "google_pubsub_topic.work"),
    ("CKV_GCP_83", "google_pubsub_topic.dead_letter"),
    # Cross-Account Protection: Google's transmitter pushes from the internet, without
    # credentials; each token is checked against Google's keys.
    ("CKV_GCP_124", "google_cloudfunctions2_function.risc"),
    ("CKV_GCP_102", "google_cloud_run_service_iam_member.risc_public"),
    # Called by the app's backends, wherever they run: IAM (run.invoker for
    # app_backend_service_accounts) and the function's own ID-token check are its gate.
    ("CKV_GCP_124", "google_cloudfunctions2_function.token_api"),
    # The events topic: Google-managed encryption like every other resource here.
    ("CKV_GCP_83", "google_pubsub_topic.events"),
}
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(?::(.*))?$", re.M)
MIN_REASON = 40


def _checkov_bin(repo_root: Path) -> Path:
    venv = repo_root / ".venv-checkov"
    checkov = venv / "bin" / "checkov"
    requirements = repo_root / "terraform" / "requirements-checkov.txt"
    lock = Path(tempfile.gettempdir()) / (
        "checkov-venv-" + hashlib.sha256(str(venv).encode()).hexdigest()[:16] + ".lock")
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not checkov.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--quiet",
                            "--disable-pip-version-check", "-r", str(requirements)], check=True)
    return checkov


@pytest.fixture(scope="session")
def checkov_report(repo_root: Path, terraform_dir: Path) -> dict:
    checkov = _checkov_bin(repo_root)
    # No --skip-check and no config file: every skip must be a comment on its resource.
    command = [str(checkov), "--directory", str(terraform_dir), "--framework", "terraform",
               "--skip-download", "--output", "json"]
    env = dict(os.environ, LOG_LEVEL="ERROR")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600,
                            check=False)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert [r["check_type"] for r in reports] == ["terraform"]
    return reports[0]


def test_checkov_finds_no_failed_check(checkov_report):
    summary = checkov_report["summary"]
    failed = [(c["check_id"], c["resource"], c["file_path"])
              for c in checkov_report["results"]["failed_checks"]]
    assert summary["failed"] == 0, f"checkov failed checks: {failed}"
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    assert summary["resource_count"] > 0


def test_every_skip_is_reviewed_and_justified(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    found = {(c["check_id"], c["resource"]) for c in skipped}
    assert found == REVIEWED_SKIPS
    for check in skipped:
        reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
        assert len(reason) >= MIN_REASON, (
            f"{check['check_id']} on {check['resource']} needs a reason, got {reason!r}")
        assert "job" not in check["resource"], "the scheduled function must pass every check"


def test_every_skip_comment_carries_a_reason(terraform_dir: Path):
    comments = 0
    for path in sorted(terraform_dir.glob("*.tf")):
        for match in SKIP_COMMENT.finditer(path.read_text()):
            comments += 1
            reason = (match.group(2) or "").strip()
            assert len(reason) >= MIN_REASON, (
                f"{path.name}: #checkov:skip={match.group(1)} needs a reason after ':'")
    assert comments == len(REVIEWED_SKIPS)
    assert not list(terraform_dir.glob(".checkov.y*ml")), "skips belong on their resources"
