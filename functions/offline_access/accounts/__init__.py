"""Accounts: what a user has with the product after signing in, shared by every flow.

`sessions` is the `__session` cookie (who is signed in on this browser, and its pending sign-in
attempts); `view` is what a signed-in user is told about their account; `lifecycle` ends an
account (disconnect: sessions ended, the grant revoked at Google, every per-user record
deleted), used by the account API, the internal `disconnect_user` function, the offline job
and the operator CLI; `api` is the account API behind `/api/*`; `internal_call` is how a public
function asks `disconnect_user` to finish a disconnect. Neither `signin/` nor `offline/` owns
this package; both may use it.
"""
