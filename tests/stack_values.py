"""Values shared by the tests' local stack. The secrets are canaries, random per test run:
tests assert that they never show up in answers, logs or Firestore."""

import base64
import secrets

CLIENT_ID = "test-client-id.apps.googleusercontent.com"
PAGE_ORIGIN = "http://localhost:8080"
CLIENT_SECRET = "GOCSPX-canary-client-secret-" + secrets.token_hex(8)
SEALING_KEY = secrets.token_bytes(32)
SEALING_KEY_B64 = base64.b64encode(SEALING_KEY).decode()
SESSION_KEY = secrets.token_bytes(32)
SESSION_KEY_B64 = base64.b64encode(SESSION_KEY).decode()
SCOPES = "openid email profile https://www.googleapis.com/auth/drive.appdata"
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
# What the sign-in page sends with every exchange request (the CSRF header and its origin).
PAGE_HEADERS = {"X-Requested-With": "XMLHttpRequest", "Origin": PAGE_ORIGIN}
