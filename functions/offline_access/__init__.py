"""Server side of Google's one-time-code ("hybrid server-side") sign-in flow.

Subpackages by flow:

- `signin`: the `exchange_code` function turns a browser's one-time code into stored, sealed tokens.
- `offline`: the `run_offline_job` function uses them to call Google APIs for every user while
  they are offline.
- `googleapis`: Google's endpoints as both flows call them.
- `store`: Firestore documents, Secret Manager secrets, and sealing.

At the top, only what both flows share: `config`, `errors`, `scopes`, `structured_log`, the
containers of `dependencies`, the builders of `wiring`, and `http_adapter`, which
`functions/main.py` hands each request to. `signin` and `offline` never import each other.
"""
