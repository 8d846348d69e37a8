"""Fixtures for the static checks of `terraform/`: the configuration parsed with python-hcl2.

No terraform binary and no network are needed: the checks read the `.tf` files as data.
Expressions stay strings (`"${var.region}"`), blocks are lists of dicts, and the comments
inside a block are kept under `__comments__` (that is where `#checkov:skip` lives).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"

_OPTIONS = SerializationOptions(strip_string_quotes=True)


def block(value: Any) -> dict[str, Any]:
    """The single block of a nested block attribute (`retry_config { ... }`)."""
    assert isinstance(value, list) and len(value) == 1, value
    return value[0]


def comments(body: dict[str, Any]) -> list[str]:
    """The comments written inside a block, without their `#`."""
    return [c["value"].strip() for c in body.get("__comments__", [])]


def ref(expression: Any) -> str:
    """`"${google_x.y.email}"` -> `"google_x.y.email"`; other values unchanged (as str)."""
    text = str(expression)
    match = re.fullmatch(r"\$\{(.*)\}", text)
    return match.group(1) if match else text


@dataclass
class TerraformConfig:
    """Every top-level block of the `.tf` files of one directory."""

    directory: Path
    parsed: dict[str, dict[str, Any]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> TerraformConfig:
        config = cls(directory)
        for path in sorted(directory.glob("*.tf")):
            text = path.read_text(encoding="utf-8")
            config.texts[path.name] = text
            config.parsed[path.name] = hcl2.loads(text, serialization_options=_OPTIONS)
        return config

    def _top(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for filename, parsed in self.parsed.items():
            for entry in parsed.get(kind, []):
                yield filename, entry

    def resources_of(self, kind: str, rtype: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for _, entry in self._top(kind):
            for name, body in entry.get(rtype, {}).items():
                assert name not in found, f"{kind} {rtype}.{name} declared twice"
                found[name] = body
        return found

    def resources(self, rtype: str) -> dict[str, dict[str, Any]]:
        return self.resources_of("resource", rtype)

    def all_resources(self) -> list[tuple[str, str, dict[str, Any], str]]:
        """(type, name, body, file) of every managed resource."""
        out = []
        for filename, entry in self._top("resource"):
            for rtype, named in entry.items():
                if rtype.startswith("__"):
                    continue
                for name, body in named.items():
                    out.append((rtype, name, body, filename))
        return out

    def data(self, rtype: str) -> dict[str, dict[str, Any]]:
        return self.resources_of("data", rtype)

    def _named(self, kind: str) -> dict[str, Any]:
        """Top-level `kind` blocks merged by name (variables, outputs, locals); no name twice."""
        found: dict[str, Any] = {}
        for _, entry in self._top(kind):
            for name, body in entry.items():
                if name.startswith("__"):
                    continue
                assert name not in found, f"{kind} {name} declared twice"
                found[name] = body
        return found

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return self._named("variable")

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return self._named("output")

    @property
    def locals(self) -> dict[str, Any]:
        return self._named("locals")

    def text(self) -> str:
        return "\n".join(self.texts.values())

    # Helpers, reachable from the tests through the fixture (conftest modules are not
    # imported by test files).
    block = staticmethod(block)
    comments = staticmethod(comments)
    ref = staticmethod(ref)


@pytest.fixture(scope="session")
def tf() -> TerraformConfig:
    return TerraformConfig.load(TERRAFORM_DIR)


@pytest.fixture(scope="session")
def terraform_dir() -> Path:
    return TERRAFORM_DIR


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
