"""Your app's backend lists a user's Drive appDataFolder while the user is offline.

    OFFLINE_ACCESS_TOKEN_API_URL=... python client/examples/drive_for_user.py SUB
"""
import os
import sys

from google.auth.transport.requests import AuthorizedSession

from offline_access_client import credentials_for

# Google's Drive API; under `make dev`, the local Google's (GOOGLE_EMULATOR_HOST).
google = f"http://{os.environ['GOOGLE_EMULATOR_HOST']}" if "GOOGLE_EMULATOR_HOST" in os.environ \
    else "https://www.googleapis.com"
drive = AuthorizedSession(credentials_for(sys.argv[1],
                                          scopes=["https://www.googleapis.com/auth/drive.appdata"]))
files = drive.get(f"{google}/drive/v3/files", params={"spaces": "appDataFolder"}).json()["files"]
print(f"{len(files)} file(s) in the app's Drive folder:", ", ".join(f["name"] for f in files))
