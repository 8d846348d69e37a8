"""The offline flow: what the product does with a user's grant while the user is away.

`run` is one scheduled run over every due user; `one_user` is one user in it (claim, work,
decide, record); `decision` is the pure per-user decision; `tokens` and `api_session` give a
task a valid access token and an authorized session; `tasks` is the extension point.
"""
