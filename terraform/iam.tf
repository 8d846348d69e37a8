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

resource "google_service_account" "account" {
  project      = var.project_id
  account_id   = local.account_sa_id
  display_name = "account_api function (${local.prefix})"
  description  = "Runtime identity of the public account API; it may invoke disconnect_user and open no token."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "disconnect" {
  project      = var.project_id
  account_id   = local.disconnect_sa_id
  display_name = "disconnect_user function (${local.prefix})"
  description  = "Runtime identity of the internal function that revokes grants and deletes users."

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

# The session key: the two public functions, which set and read the
# __session cookie. Nothing else reads it.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "exchange_session_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.session_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.exchange.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "account_session_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.session_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.account.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "job_log_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

# The account API logs user references; it seals and opens nothing.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "account_log_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.account.email}"
}

# disconnect_user opens the stored token to revoke it at Google: it needs the
# private keys (and the old AES key while tokens sealed with it remain), and not
# the client secret (revocation takes only the token).
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "disconnect_sealing_private_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_private_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.disconnect.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "disconnect_sealing_public_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_public_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.disconnect.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "disconnect_sealing_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.disconnect.email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "disconnect_log_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.disconnect.email}"
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

# https://cloud.google.com/firestore/docs/security/iam#roles
resource "google_project_iam_member" "account_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.account.email}"
}

# https://cloud.google.com/firestore/docs/security/iam#roles
resource "google_project_iam_member" "disconnect_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.disconnect.email}"
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

# Cloud Run Invoker for everyone on the account API's service, as on the
# exchange function: Hosting's /api/** rewrite forwards requests without
# credentials. Every route checks the session cookie; every POST checks
# X-Requested-With and the Origin allowlist; max_instance_count caps it.
# https://cloud.google.com/run/docs/authenticating/public
resource "google_cloud_run_service_iam_member" "account_public" {
  #checkov:skip=CKV_GCP_102:Public by design. Firebase Hosting proxies the page's /api/** requests to this service without credentials; the function authenticates users by their __session cookie, enforces X-Requested-With and the Origin allowlist on every POST, and holds no key that opens tokens.
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.account.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Cloud Run Invoker on disconnect_user for the account API's identity only:
# Cloud Run checks the ID token it sends (audience = the function's URL).
# https://cloud.google.com/run/docs/authenticating/service-to-service
resource "google_cloud_run_service_iam_member" "disconnect_invoker_account" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.disconnect.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.account.email}"
}

#-- Builds --#

# The build account runs each function's build: buildpacks, then a `pip install` of
# functions/requirements.txt (hashed, so only the reviewed packages). Google documents three
# roles for a user-specified build account, each at project level:
# https://cloud.google.com/run/docs/configuring/services/build-service-account
# https://cloud.google.com/functions/docs/securing/build-custom-sa
# Two of them can be narrowed to the resources a gen2 build touches, which is done here.

# Artifact Registry Writer on the functions' own repository only (build_config.docker_repository):
# the built images and the buildpacks cache go there. Without docker_repository, builds write
# to the gcf-artifacts repository, which Cloud Functions creates at the first build, too late
# to grant on it beforehand.
# https://cloud.google.com/artifact-registry/docs/access-control#roles
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Storage Object Viewer on the staging bucket: Cloud Functions copies storage_source into
# gcf-v2-sources-PROJECT_NUMBER-REGION, and the build's fetch step downloads it from there
# ("Access to bucket gcf-v2-sources-... denied. You must grant Storage Object Viewer permission
# to <build account>": https://github.com/hashicorp/terraform-provider-google/issues/20571).
# The gcf-v2-uploads-... bucket serves only gcloud's generateUploadUrl flow, unused here.
# https://cloud.google.com/functions/docs/building
# https://cloud.google.com/storage/docs/access-control/iam-roles
resource "google_storage_bucket_iam_member" "build_gcf_sources_reader" {
  bucket = local.gcf_sources_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"

  depends_on = [google_storage_bucket.gcf_sources]
}

# Storage Object Viewer on this deployment's source bucket, which storage_source names.
# https://cloud.google.com/storage/docs/access-control/iam-roles
resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.functions_source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# Logs Writer stays project-level: log entries are written to a project (logging.logEntries.create
# has no narrower resource), and a build with a user-specified account must log to Cloud Logging.
# https://cloud.google.com/logging/docs/access-control#logging.logWriter
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}
