"""A local stand-in for Google's OAuth server, OpenID endpoints, Drive appData, GIS script and
Cross-Account Protection (RISC) transmitter.

Tests start it in-process (`LocalGoogle(...).start()`); `make dev` runs it with
`python -m localdev.local_google`. Behaviour follows docs/design.md and
google-oauth.md §8; the control API is documented in README.md.
"""

from .control import GoogleControl
from .service import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, LocalGoogle

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "GoogleControl", "LocalGoogle"]
