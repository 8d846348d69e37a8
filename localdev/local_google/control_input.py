"""Reading the JSON bodies of the `/_control/` API: typed fields, and `ControlError` for bad input.

Shared by the control blueprints (`control_api.py`, `risc_control.py`). Every error names the
field and what it must be; the blueprints answer it with 400 (or the error's `status`).
"""

from __future__ import annotations

from flask import request


class ControlError(ValueError):
    """Bad control input (answered with 400, or `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def body() -> dict:
    """The request's JSON object (`{}` for an empty body)."""
    data = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(data, dict):
        raise ControlError("the body must be a JSON object")
    return data


def opt_str(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ControlError(f"`{name}` must be a string")
    return value


def string(data: dict, name: str) -> str:
    """A string field that may be empty but must be present."""
    value = data.get(name)
    if not isinstance(value, str):
        raise ControlError(f"`{name}` must be a string")
    return value


def required_str(data: dict, name: str) -> str:
    value = opt_str(data, name)
    if value is None:
        raise ControlError(f"`{name}` is required")
    return value


def opt_int(data: dict, name: str) -> int | None:
    value = opt_number(data, name)
    return None if value is None else int(value)


def opt_number(data: dict, name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ControlError(f"`{name}` must be a number")
    return float(value)


def opt_bool(data: dict, name: str) -> bool | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ControlError(f"`{name}` must be true or false")
    return value


def opt_str_list(data: dict, name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ControlError(f"`{name}` must be a list of strings")
    return value
