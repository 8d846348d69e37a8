"""google-auth credentials for the users of an offline-access deployment.

    from offline_access_client import credentials_for
    credentials = credentials_for(sub)           # any Google client library takes these

`credentials_for` and `user_for_session` use a client for `OFFLINE_ACCESS_TOKEN_API_URL`;
`TokenApiClient(url)` is the same with explicit settings.
"""

from .client import (
    AccessToken,
    SessionUser,
    TokenApiClient,
    credentials_for,
    default_client,
    user_for_session,
)
from .credentials import UserCredentials
from .errors import (
    CallerRejected,
    NeedsReauth,
    ScopeNotGranted,
    TokenApiError,
    TokenApiUnavailable,
    UserNotFound,
)

__all__ = [
    "AccessToken",
    "CallerRejected",
    "NeedsReauth",
    "ScopeNotGranted",
    "SessionUser",
    "TokenApiClient",
    "TokenApiError",
    "TokenApiUnavailable",
    "UserCredentials",
    "UserNotFound",
    "credentials_for",
    "default_client",
    "user_for_session",
]
