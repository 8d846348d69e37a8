#-- Cross-Account Protection (RISC) --#

# Google tells the apps that hold a user's grants when that user's account is
# hijacked, disabled or enabled, or has its sessions or tokens revoked
# (https://developers.google.com/identity/protocols/risc). Everything here is
# created only with risc_enabled = true: the RISC API, the receiver function
# Google pushes security event tokens to (public: Google calls it without
# credentials), its service account, the service account that registers the
# stream, the key of the refresh-token identifiers, and the TTL policy of the
# receiver's event records. Registration itself is a call to Google's API,
# made after apply: `offline-access risc register` (terraform/README.md).

locals {
  risc_count = var.risc_enabled ? 1 : 0
  # The receiver's record per event (functions/offline_access/store/security_events.py).
  risc_events_collection = "security_event_tokens"
}

#-- API --#

# The RISC API must be on in the project that owns the OAuth client; the first
# time, the console may ask the project owner to accept its terms of service.
resource "google_project_service" "risc" {
  count = local.risc_count

  project = var.project_id
  service = "risc.googleapis.com"

  disable_on_destroy         = false
  disable_dependent_services = false
}

#-- Service accounts --#

resource "google_service_account" "risc" {
  count = local.risc_count

  project      = var.project_id
  account_id   = local.risc_sa_id
  display_name = "risc_receiver function (${local.prefix})"
  description  = "Runtime identity of the public RISC receiver; it may invoke disconnect_user and open no token."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "risc_admin" {
  count = local.risc_count

  project      = var.project_id
  account_id   = local.risc_admin_sa_id
  display_name = "RISC stream registration (${local.prefix})"
  description  = "Registers the RISC receiver with Google (offline-access risc register); never runs a function."

  depends_on = [google_project_service.enabled]
}

# RISC Configuration Admin: the role Google's RISC API requires of the
# service account that registers, reads and verifies the stream.
# https://developers.google.com/identity/protocols/risc#configure_service_account
# https://cloud.google.com/iam/docs/understanding-roles#riscconfigs.admin
resource "google_project_iam_member" "risc_admin_riscconfigs" {
  count = local.risc_count

  project = var.project_id
  role    = "roles/riscconfigs.admin"
  member  = "serviceAccount:${google_service_account.risc_admin[0].email}"

  depends_on = [google_project_service.risc]
}

# Service Account Token Creator on the registration account, for the operators
# named in risc_admins: `offline-access risc register --impersonate` mints a
# short-lived token from their own credentials, so no key file is ever made.
# https://cloud.google.com/iam/docs/service-account-impersonation
# https://cloud.google.com/iam/docs/understanding-roles#iam.serviceAccountTokenCreator
resource "google_service_account_iam_member" "risc_admin_impersonators" {
  for_each = var.risc_enabled ? toset(var.risc_admins) : toset([])

  service_account_id = google_service_account.risc_admin[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}

# Cloud Datastore User: the receiver reads users and writes what an event
# changes, with its event records (Firestore IAM has no per-collection scope).
# https://cloud.google.com/firestore/docs/security/iam#roles
resource "google_project_iam_member" "risc_datastore_user" {
  count = local.risc_count

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.risc[0].email}"
}

#-- Secrets --#

# The key of the refresh-token identifiers (32 random bytes, base64): the
# exchange and the job store HMACs of each refresh token under it, and the
# receiver matches token-revoked events with it. Created empty; `make
# create-token-id-key` adds the key. Not the log key: these values are kept
# and matched months later, while the log key may rotate at any time.
resource "google_secret_manager_secret" "refresh_token_id_key" {
  count = local.risc_count

  project   = var.project_id
  secret_id = local.token_id_key_id

  labels = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "exchange_token_id_key" {
  count = local.risc_count

  project   = var.project_id
  secret_id = google_secret_manager_secret.refresh_token_id_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.exchange.email}"
}

# The job stores the identifiers of a refresh token Google rotated.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "job_token_id_key" {
  count = local.risc_count

  project   = var.project_id
  secret_id = google_secret_manager_secret.refresh_token_id_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

# So does the fan-out's worker, which runs the job's users in pubsub mode.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "worker_token_id_key" {
  count = local.fanout ? local.risc_count : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.refresh_token_id_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker[0].email}"
}

# And the token API, which refreshes (and so may store a rotated token) for the app's backend.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "token_api_token_id_key" {
  count = local.risc_count

  project   = var.project_id
  secret_id = google_secret_manager_secret.refresh_token_id_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.token_api.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "risc_token_id_key" {
  count = local.risc_count

  project   = var.project_id
  secret_id = google_secret_manager_secret.refresh_token_id_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.risc[0].email}"
}

# The receiver logs users by their reference; it seals and opens nothing.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "risc_log_key" {
  count = local.risc_count

  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.risc[0].email}"
}

#-- The receiver: public, called by Google --#

resource "google_cloudfunctions2_function" "risc" {
  #checkov:skip=CKV_GCP_124:Ingress must be ALLOW_ALL: Google's RISC transmitter pushes security event tokens from the internet to this URL. Every request is a signed token checked against Google's published keys (kid, RS256, aud, iss); anything else is answered 400 and changes nothing, and the function holds no key that opens tokens.
  count = local.risc_count

  project     = var.project_id
  location    = var.region
  name        = local.risc_function_name
  description = "Receives Google's Cross-Account Protection security event tokens and acts on them (POST)."

  build_config {
    runtime         = "python312"
    entry_point     = "risc_receiver"
    service_account = google_service_account.build.id
    # The build pushes the image to this deployment's own repository (its Artifact Registry
    # writer role is bound there alone).
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    min_instance_count               = 0
    max_instance_count               = var.risc_max_instances
    max_instance_request_concurrency = var.exchange_concurrency
    available_cpu                    = "1"
    available_memory                 = var.exchange_memory
    timeout_seconds                  = 60
    # Google's transmitter reaches the service over the internet.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.risc[0].email

    environment_variables = merge(local.function_environment, local.events_environment, {
      THREADS = tostring(var.exchange_concurrency)
      # A hijacked account is disconnected by this internal function, called
      # with an ID token for its URL (the job finishes it if the call fails).
      DISCONNECT_FUNCTION_URL = google_cloudfunctions2_function.disconnect.service_config[0].uri
      RISC_CLIENT_IDS         = join(",", var.risc_client_ids)
    })
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_gcf_sources_reader,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.risc_token_id_key,
    google_secret_manager_secret_iam_member.risc_log_key,
    google_project_iam_member.risc_datastore_user,
    google_cloud_run_service_iam_member.disconnect_invoker_risc,
  ]
}

# Cloud Run Invoker for everyone on the receiver: Google's transmitter sends
# no credentials. The function checks each token's signature against Google's
# keys, and max_instance_count caps it.
# https://cloud.google.com/run/docs/authenticating/public
resource "google_cloud_run_service_iam_member" "risc_public" {
  #checkov:skip=CKV_GCP_102:Public by design. Google's Cross-Account Protection pushes security event tokens without credentials; the function accepts only tokens signed by Google's published keys for our client ids, and holds no key that opens tokens.
  count = local.risc_count

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.risc[0].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Cloud Run Invoker on disconnect_user for the receiver's identity: a hijacked
# account is revoked and deleted through the account lifecycle, as the account
# API's Disconnect is.
# https://cloud.google.com/run/docs/authenticating/service-to-service
resource "google_cloud_run_service_iam_member" "disconnect_invoker_risc" {
  count = local.risc_count

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.disconnect.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.risc[0].email}"
}

#-- The receiver's event records --#

# One record per event received (its jti) makes a redelivery change nothing;
# Firestore's TTL policy deletes each record after its expire_at (30 days).
# The field is never queried, so it has no index either.
# https://cloud.google.com/firestore/docs/ttl
resource "google_firestore_field" "security_event_tokens_ttl" {
  count = local.risc_count

  project    = var.project_id
  database   = local.firestore_database
  collection = local.risc_events_collection
  field      = "expire_at"

  ttl_config {}
  index_config {}

  depends_on = [google_firestore_database.default]
}
