"""Where Google's HTTP endpoints are.

Production code and local runs share one code path: setting `GOOGLE_EMULATOR_HOST=host:port`
serves every endpoint from `http://host:port` under the same path as at Google. Nothing else in
the project builds a Google URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

GOOGLE_EMULATOR_HOST = "GOOGLE_EMULATOR_HOST"


@dataclass(frozen=True)
class GoogleEndpoints:
    """Absolute URLs of the Google endpoints the functions call."""

    token: str
    revoke: str
    certs_pem: str
    userinfo: str
    drive: str
    # Cross-Account Protection: the transmitter's discovery document, and the stream
    # management API (`risc.googleapis.com/v1beta`, whose paths are fixed: Google's document
    # has been seen to spell them wrong).
    risc_configuration: str
    risc_api: str

    @classmethod
    def production(cls) -> GoogleEndpoints:
        return cls(
            token="https://oauth2.googleapis.com/token",
            revoke="https://oauth2.googleapis.com/revoke",
            certs_pem="https://www.googleapis.com/oauth2/v1/certs",
            userinfo="https://www.googleapis.com/oauth2/v3/userinfo",
            drive="https://www.googleapis.com/drive/v3",
            risc_configuration="https://accounts.google.com/.well-known/risc-configuration",
            risc_api="https://risc.googleapis.com/v1beta",
        )

    @classmethod
    def emulated(cls, host_port: str) -> GoogleEndpoints:
        base = f"http://{host_port}"
        return cls(
            token=f"{base}/token",
            revoke=f"{base}/revoke",
            certs_pem=f"{base}/oauth2/v1/certs",
            userinfo=f"{base}/oauth2/v3/userinfo",
            drive=f"{base}/drive/v3",
            risc_configuration=f"{base}/.well-known/risc-configuration",
            risc_api=f"{base}/v1beta",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GoogleEndpoints:
        host_port = environ.get(GOOGLE_EMULATOR_HOST, "").strip()
        return cls.emulated(host_port) if host_port else cls.production()
