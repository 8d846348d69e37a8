#-- token_api: for the app's backend, by IAM --#

locals {
  token_api_function_name = "${local.prefix}-token-api"
  # "-tokens": "-token-api" would pass 30 characters with the longest prefix.
  token_api_sa_id = "${local.prefix}-tokens"

  # The audiences a caller's ID token may name: the function's two URLs, as Cloud Run accepts
  # either. Both are known before the function exists (Cloud Run's deterministic URL and the
  # Cloud Functions URL), so the function can check its own audience without a cycle.
  # https://cloud.google.com/run/docs/triggering/https-request#deterministic
  token_api_audiences = [
    "https://${local.token_api_function_name}-${data.google_project.this.number}.${var.region}.run.app",
    "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.token_api_function_name}",
  ]
}

resource "google_service_account" "token_api" {
  project      = var.project_id
  account_id   = local.token_api_sa_id
  display_name = "token_api function (${local.prefix})"
  description  = "Runtime identity of the token API: it opens tokens and refreshes them for the app's backend."

  depends_on = [google_project_service.enabled]
}

# The token API refreshes tokens as the job does: the client secret, the private keys (and the
# first releases' AES key while tokens sealed with it remain), the public key to seal what it
# stores, the log key, and the session key for POST /session.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "token_api_client_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.oauth_client_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.token_api.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "token_api_sealing_private_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_private_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.token_api.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "token_api_sealing_public_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_public_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.token_api.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "token_api_sealing_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.token_api.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "token_api_log_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.token_api.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "token_api_session_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.session_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.token_api.email}"
}

# https://cloud.google.com/firestore/docs/security/iam#roles
resource "google_project_iam_member" "token_api_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.token_api.email}"
}

resource "google_cloudfunctions2_function" "token_api" {
  #checkov:skip=CKV_GCP_124:Ingress must be ALLOW_ALL: the callers are the app's own backends (on Cloud Run, GKE, another project or another cloud), which are not internal traffic without a VPC connector or Shared VPC. Cloud Run IAM is the gate: run.invoker is granted to the service accounts of app_backend_service_accounts only, and the function checks the caller's Google ID token (audience, allowlisted email) again.
  project     = var.project_id
  location    = var.region
  name        = local.token_api_function_name
  description = "The app backend's token API: a user's valid access token (POST /token) and who a session cookie is (POST /session)."

  build_config {
    runtime         = "python312"
    entry_point     = "token_api"
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
    max_instance_count               = var.token_api_max_instances
    max_instance_request_concurrency = var.exchange_concurrency
    available_cpu                    = "1"
    available_memory                 = "512Mi"
    timeout_seconds                  = 60
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.token_api.email

    environment_variables = merge(local.opening_environment, local.events_environment, {
      THREADS                   = tostring(var.exchange_concurrency)
      TOKEN_API_AUDIENCES       = join(",", local.token_api_audiences)
      TOKEN_API_ALLOWED_CALLERS = join(",", var.app_backend_service_accounts)
    })
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_gcf_sources_reader,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.token_api_client_secret,
    google_secret_manager_secret_iam_member.token_api_sealing_private_keys,
    google_secret_manager_secret_iam_member.token_api_sealing_public_keys,
    google_secret_manager_secret_iam_member.token_api_sealing_key,
    google_secret_manager_secret_iam_member.token_api_log_key,
    google_secret_manager_secret_iam_member.token_api_session_key,
    google_project_iam_member.token_api_datastore_user,
  ]
}

# Cloud Run Invoker on the token API for the app backends' service accounts only: Cloud Run
# checks the ID token each call carries (audience = the function's URL).
# https://cloud.google.com/run/docs/authenticating/service-to-service
resource "google_cloud_run_service_iam_member" "token_api_invokers" {
  for_each = toset(var.app_backend_service_accounts)

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.token_api.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value}"
}
