"""`offline-access`: the operator's command line, one module per command group.

    offline-access [--env-file FILE] users list [--status S] [--reason R] [--json]
    offline-access [--env-file FILE] users show SUB|EMAIL [--json]
    offline-access [--env-file FILE] users disconnect (SUB | --all) [--yes] [--json]
    offline-access [--env-file FILE] job run [--user SUB | --all] [--json]
    offline-access [--env-file FILE] keys status | rotate | retire KEY | add-log-key | add-token-id-key
    offline-access [--env-file FILE] risc register [--url URL] | status | verify [--state S]

`main` builds the parser from `GROUPS`: each name is a module of this package with a
`register(subparsers)` function that adds its commands, each command setting `run` to a
function of `(args, context)` that returns the exit status. A new group (`keys`, `risc`...) is a
new module and one more name in `GROUPS`. `context.CliContext` holds the configuration (the
functions' own environment variables, from the shell or an env file) and builds the same
dependencies the functions build, so every command goes through the same code as production.
"""
