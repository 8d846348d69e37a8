#-- Secrets --#

# Containers only. Their values never pass through Terraform (no secret version
# resource here, nothing in tfvars or state): `make set-client-secret` adds the
# client secret with gcloud from a hidden prompt; `make rotate-sealing-key` and
# `make rotate-log-key` generate keys with Python's cryptography and add them
# through the Secret Manager API; `make rotate-session-key` adds a session key
# with gcloud from os.urandom.

resource "google_secret_manager_secret" "oauth_client_secret" {
  project   = var.project_id
  secret_id = local.client_secret_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# The first releases' AES keys (32 random bytes, base64). Nothing seals with them
# any more; the job opens tokens they sealed and re-seals them under the key
# pairs below. Kept so that an upgraded deployment keeps its old keys until
# make retire-sealing-key KEY=aes-N has retired them; empty in new deployments.
resource "google_secret_manager_secret" "token_sealing_key" {
  project   = var.project_id
  secret_id = local.sealing_key_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# One version per key pair: the private half, whose version number is the key id
# stored with every sealed token. Only functions that open tokens may read it.
resource "google_secret_manager_secret" "token_sealing_private_keys" {
  project   = var.project_id
  secret_id = local.sealing_private_key_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# One version per key pair: the public half, naming its key id. Every function
# that seals reads the primary (token_sealing_public_key_version).
resource "google_secret_manager_secret" "token_sealing_public_keys" {
  project   = var.project_id
  secret_id = local.sealing_public_keys_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# The key of the logs' user references (HMAC-SHA256 of the sub): 32 random
# bytes, base64. Read by every function that logs a user.
resource "google_secret_manager_secret" "log_user_ref_key" {
  project   = var.project_id
  secret_id = local.log_key_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# The key of the __session cookie (32 random bytes, base64, per version):
# read by the two public functions only. Its version number is the key id in
# each cookie; `make rotate-session-key` adds one.
resource "google_secret_manager_secret" "session_key" {
  project   = var.project_id
  secret_id = local.session_key_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}
