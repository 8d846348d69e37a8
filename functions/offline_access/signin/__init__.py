"""The sign-in flow: a browser's one-time code becomes a signed-in user with sealed, stored tokens.

`request_guard` checks the request before any I/O; `exchange` runs the steps; `id_token` verifies
Google's ID token; `prefetch` overlaps a cold instance's first downloads with the exchange.
"""
