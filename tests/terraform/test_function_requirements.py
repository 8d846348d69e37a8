"""functions/requirements.txt: the deployed build installs exactly what was reviewed.

Cloud Functions' Python build runs `pip install -r requirements.txt`; a file whose every
requirement carries --hash puts pip in hash-checking mode, so the build installs those files
and nothing else. The file is generated from functions/requirements.in (`make requirements`).
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = REPO_ROOT / "functions" / "requirements.txt"
DIRECT = REPO_ROOT / "functions" / "requirements.in"
PROVIDER_LOCK = REPO_ROOT / "tools" / "tf_offline_plan" / "requirements.txt"


def entries(path: Path) -> list[tuple[Requirement, list[str]]]:
    """(requirement, its hashes) of each requirement of a pip requirements file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"{path.name}: unexpected option line {line!r}"
        spec, *options = re.split(r"\s+--", line)
        hashes = [o.removeprefix("hash=") for o in options if o.startswith("hash=")]
        assert len(hashes) == len(options), f"{path.name}: only --hash options expected: {line!r}"
        found.append((Requirement(spec.strip()), hashes))
    return found


def pins(path: Path) -> dict[str, str]:
    return {canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r, _ in entries(path)}


@pytest.mark.parametrize("lock", [LOCK, PROVIDER_LOCK], ids=["functions", "tf_offline_plan"])
def test_every_requirement_is_pinned_and_hashed(lock):
    found = entries(lock)
    assert len(found) > 5
    for requirement, hashes in found:
        assert re.fullmatch(r"==[^,*]+", str(requirement.specifier)), f"{requirement} is not pinned exactly"
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), f"{requirement}: no hash"
    names = [canonicalize_name(r.name) for r, _ in found]
    assert len(names) == len(set(names)), "a package is listed twice"


def test_every_direct_dependency_is_locked_at_its_reviewed_version():
    direct = pins(DIRECT)
    assert set(direct) >= {"functions-framework", "google-cloud-firestore", "google-cloud-secret-manager",
                           "google-cloud-pubsub", "google-auth", "requests", "cryptography"}
    locked = pins(LOCK)
    for name, version in direct.items():
        assert locked.get(name) == version, f"{name}: {version} in requirements.in, {locked.get(name)} in the lock"


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_lock_installs_whole_on_cpython(python):
    # 3.12 is the Cloud Functions runtime (python312), 3.11 the local virtualenv: no requirement
    # may be skipped by a marker on either (uv pip compile --universal writes PyPy-only ones).
    environment = dict(default_environment(), python_version=python, python_full_version=f"{python}.0",
                       implementation_name="cpython", platform_python_implementation="CPython",
                       sys_platform="linux", platform_system="Linux")
    for requirement, _ in entries(LOCK):
        if requirement.marker is not None:
            assert requirement.marker.evaluate(environment), f"{requirement} is skipped on CPython {python}"


def test_the_virtualenv_holds_exactly_the_locked_versions():
    # make install installs the lock with --require-hashes, then the dev tools in a second pip
    # call; that second call must not have moved any locked package.
    moved = {}
    for name, version in pins(LOCK).items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            moved[name] = (version, installed)
    assert not moved, f"locked version vs installed: {moved}"


def test_install_files_keep_hashed_and_unhashed_requirements_apart():
    runtime = (REPO_ROOT / "requirements.txt").read_text()
    dev = (REPO_ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^-r functions/requirements\.txt$", runtime, re.M)
    assert not re.search(r"^\s*-r ", dev, re.M), "requirements-dev.txt must not pull in the hashed lock"
    assert "--hash" not in dev
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements.txt" in makefile
    assert "uv pip compile" in makefile and "--generate-hashes" in makefile
