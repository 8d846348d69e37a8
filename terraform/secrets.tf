#-- Secrets --#

# Containers only. Their values never pass through Terraform (no secret version
# resource here, nothing in tfvars or state): `make set-client-secret`,
# `make rotate-sealing-key` and `make rotate-session-key` add versions with
# gcloud, reading from the terminal or from os.urandom.

resource "google_secret_manager_secret" "oauth_client_secret" {
  project   = var.project_id
  secret_id = local.client_secret_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# Versions each hold 32 random bytes, base64-encoded; the version number is the
# key id stored with every sealed token, so old versions stay enabled.
resource "google_secret_manager_secret" "token_sealing_key" {
  project   = var.project_id
  secret_id = local.sealing_key_id

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
