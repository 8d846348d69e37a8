"""Cross-Account Protection (RISC): acting on the security events Google sends about our users.

Google pushes a signed Security Event Token (a JWT, RFC 8417) to the receiver's URL whenever an
account that granted the app access is hijacked, disabled or enabled, has its sessions or
tokens revoked, or should change its password (google-oauth.md §5).

- `events`: the event types, and the events of a verified token as plain values;
- `verifier`: the token checked as Google's guide says (issuer and `jwks_uri` from Google's
  RISC configuration, the `kid` required, RS256 only, `aud` among our client ids, `iss` the
  configuration's issuer, no `exp`);
- `actions`: what each event does to a user document, decided without I/O;
- `receiver`: one pushed token, end to end (verify, find the user, act once, log);
- `registration`: the stream management API (`stream:update`, `stream`, `stream/status`,
  `stream:verify`), for the operator CLI and `make dev`.

The receiver is a public function that holds no key that opens tokens: what needs a token
(revoking a hijacked account's grant) goes through the account lifecycle's internal
`disconnect_user` function, as the account API's Disconnect does.
"""
