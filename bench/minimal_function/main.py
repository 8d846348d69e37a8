"""The cold-start baseline: a function that imports the same client libraries and does nothing."""

import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
import functions_framework
import google.auth  # noqa: F401
import requests  # noqa: F401
from google.cloud import firestore, secretmanager_v1  # noqa: F401


@functions_framework.http
def minimal(request):
    return {"ok": True}
