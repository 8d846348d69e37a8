"""The token API, for the app's own backend: a user's access token, and who a session is.

`callers` checks the caller's Google ID token, `access_tokens` gives out access tokens (one
refresh per user at a time, across instances), `api` is the routes and their dependencies.
"""
