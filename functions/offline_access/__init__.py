"""Server side of Google's one-time-code ("hybrid server-side") sign-in flow.

The `exchange_code` function (see `code_exchange`) turns a browser's one-time code into stored,
sealed tokens; the `run_offline_job` function (see `offline_job`) later uses them to call Google
APIs for every user while they are offline. `functions/main.py` adapts HTTP to these modules.
"""
