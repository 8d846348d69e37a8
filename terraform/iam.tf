#-- Service accounts --#

# One identity per workload: the default compute service account may hold
# Editor, and a shared identity would give each function the other's access.

resource "google_service_account" "exchange" {
  project      = var.project_id
  account_id   = local.exchange_sa_id
  display_name = "exchange_code function (${local.prefix})"
  description  = "Runtime identity of the public code-exchange function."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "job" {
  project      = var.project_id
  account_id   = local.job_sa_id
  display_name = "run_offline_job function (${local.prefix})"
  description  = "Runtime identity of the scheduled offline job."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = local.scheduler_sa_id
  display_name = "Cloud Scheduler caller (${local.prefix})"
  description  = "Identity in the OIDC token Cloud Scheduler sends to run_offline_job; it can invoke that function and nothing else."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = local.build_sa_id
  display_name = "Function builds (${local.prefix})"
  description  = "Cloud Build identity for building both functions; never used at run time."

  depends_on = [google_project_service.enabled]
}

#-- Secret Manager: per secret, per function --#

# Secret Manager Secret Accessor: read secret versions.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "exchange_client_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.oauth_client_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.exchange.email}"
}

# The exchange seals with the primary public key; it may read no private key and
# not the old AES key, so code running in it cannot open a stored token.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "exchange_sealing_public_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_public_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.exchange.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "exchange_log_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.exchange.email}"
}

# The job refreshes access tokens, which needs the client secret too.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "job_client_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.oauth_client_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

# The job re-seals under the primary public key.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "job_sealing_public_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_public_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

# The job opens tokens: it reads one private-key version by name (the key id a
# sealed token names); it needs no permission to list versions.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "job_sealing_private_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_private_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

# Tokens sealed by the first releases open with the old AES key, in the job only.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "job_sealing_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "job_log_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

#-- Firestore --#

# Cloud Datastore User: read and write documents. Firestore IAM has no
# per-collection scope, so this is the one project-level runtime role.
# https://cloud.google.com/firestore/docs/security/iam#roles
resource "google_project_iam_member" "exchange_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.exchange.email}"
}

# https://cloud.google.com/firestore/docs/security/iam#roles
resource "google_project_iam_member" "job_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.job.email}"
}

#-- Invokers --#

# Cloud Run Invoker on the scheduled function's service, for the Scheduler
# identity only. Its ingress is internal: same-project Cloud Scheduler counts
# as internal, the internet does not.
# https://cloud.google.com/run/docs/reference/iam/roles#run.invoker
resource "google_cloud_run_service_iam_member" "job_invoker_scheduler" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.job.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# Cloud Run Invoker for everyone on the exchange function's service: the
# browser reaches it through Firebase Hosting's /api/exchange rewrite, and
# Hosting forwards requests without credentials. The function itself checks
# the method, X-Requested-With, Origin, content type and body size, and is
# capped by max_instance_count.
# https://cloud.google.com/run/docs/authenticating/public
resource "google_cloud_run_service_iam_member" "exchange_public" {
  #checkov:skip=CKV_GCP_102:Public by design. Firebase Hosting proxies the sign-in page's POST /api/exchange to this service without credentials; the function enforces X-Requested-With, an Origin allowlist, content type and size limits, and max instances cap the cost.
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.exchange.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

#-- Builds --#

# The roles Google documents for a user-specified function build service
# account. With them the build does not depend on the default compute service
# account, which new organizations no longer grant Editor.
locals {
  build_roles = toset([
    # Logs Writer: build logs.
    # https://cloud.google.com/logging/docs/access-control#logging.logWriter
    "roles/logging.logWriter",
    # Artifact Registry Writer: the built image (gcf-artifacts repository).
    # https://cloud.google.com/artifact-registry/docs/access-control#roles
    "roles/artifactregistry.writer",
    # Storage Object Admin: reads the staged source, writes the build cache.
    # https://cloud.google.com/storage/docs/access-control/iam-roles
    "roles/storage.objectAdmin",
  ])
}

# https://cloud.google.com/run/docs/configuring/services/build-service-account
resource "google_project_iam_member" "build" {
  for_each = local.build_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}
