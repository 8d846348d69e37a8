#-- Source archive --#

locals {
  functions_source_dir = "${path.module}/../functions"

  # Explicit file lists rather than globs, so any archive provider 2.x applies
  # them the same way. Caches, tests and local settings never ship.
  functions_source_excludes = setunion(
    fileset(local.functions_source_dir, "**/__pycache__/**"),
    fileset(local.functions_source_dir, "**/*.py[cod]"),
    fileset(local.functions_source_dir, "**/.pytest_cache/**"),
    fileset(local.functions_source_dir, "**/.mypy_cache/**"),
    fileset(local.functions_source_dir, "**/.ruff_cache/**"),
    fileset(local.functions_source_dir, "**/tests/**"),
    fileset(local.functions_source_dir, "**/test_*.py"),
    fileset(local.functions_source_dir, "**/*_test.py"),
    fileset(local.functions_source_dir, "**/.env*"),
    fileset(local.functions_source_dir, "**/.venv/**"),
    # The package metadata of `make install`, and the operator CLI, which never runs in a function.
    fileset(local.functions_source_dir, "*.egg-info/**"),
    fileset(local.functions_source_dir, "offline_access/cli/**"),
  )
}

data "archive_file" "functions" {
  type             = "zip"
  source_dir       = local.functions_source_dir
  excludes         = local.functions_source_excludes
  output_path      = "${path.module}/.build/functions.zip"
  output_file_mode = "0644"
}

resource "google_storage_bucket" "functions_source" {
  #checkov:skip=CKV_GCP_62:Holds only the functions' source archives (this repository's code), written by Terraform and read by Cloud Build; usage logs would need a second bucket and would record nothing worth auditing.
  project  = var.project_id
  name     = local.source_bucket_name
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Only Terraform-managed archives live here: destroy may empty it.
  force_destroy = true

  versioning {
    enabled = true
  }

  # A replaced archive becomes noncurrent; keep it for a while for rollbacks.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.source_archive_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  labels = local.labels

  depends_on = [google_project_service.enabled]
}

# Named by content hash: a code change is a new object, and a new object is a
# new function build.
resource "google_storage_bucket_object" "functions_source" {
  bucket       = google_storage_bucket.functions_source.name
  name         = "functions-${data.archive_file.functions.output_md5}.zip"
  source       = data.archive_file.functions.output_path
  content_type = "application/zip"
}

#-- Builds --#

# The functions' images, in a repository of this deployment's own (build_config.docker_repository)
# so that the build account can write here and nowhere else. Old images are cleaned up.
# https://cloud.google.com/functions/docs/building
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption, as for every other resource of this deployment: the images hold this repository's public code and its pinned, hashed dependencies, no data and no secret; a customer-managed key would add a KMS key ring and its IAM with nothing to protect.
  project       = var.project_id
  location      = var.region
  repository_id = local.image_repository_id
  format        = "DOCKER"
  description   = "Images of the ${local.prefix} functions, built by Cloud Functions."

  cleanup_policy_dry_run = false
  # Every version but the newest few of each image is deleted once old enough; the running
  # revision's image is always among the newest.
  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "${var.source_archive_retention_days * 86400}s"
    }
  }

  labels = local.labels

  depends_on = [google_project_service.enabled]
}

# Cloud Functions copies a function's source here before building it, creating the bucket at
# the first gen2 deployment of the project in this region. Terraform creates it first, so the
# build account's read grant exists before the first build (Google's secure-cloud-function-core
# module does the same: github.com/GoogleCloudPlatform/terraform-google-cloud-functions).
resource "google_storage_bucket" "gcf_sources" {
  #checkov:skip=CKV_GCP_62:Cloud Functions' staging copies of this repository's source archives; usage logs would need another bucket and would record nothing worth auditing.
  count = var.create_gcf_sources_bucket ? 1 : 0

  project  = var.project_id
  name     = local.gcf_sources_bucket
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Copies only: Cloud Functions writes them again at the next deployment.
  force_destroy = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.source_archive_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  labels = local.labels

  depends_on = [google_project_service.enabled]
}

#-- exchange_code: public, behind Firebase Hosting --#

resource "google_cloudfunctions2_function" "exchange" {
  #checkov:skip=CKV_GCP_124:Ingress must be ALLOW_ALL: Firebase Hosting's /api/exchange rewrite reaches the Cloud Run service from the internet and is not an internal or load-balancer source. The scheduled function, which needs no such caller, is internal-only.
  project     = var.project_id
  location    = var.region
  name        = local.exchange_function_name
  description = "Exchanges the sign-in page's one-time code for the user's tokens (POST /api/exchange)."

  build_config {
    runtime           = "python312"
    entry_point       = "exchange_code"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    # Nothing runs while nobody signs in.
    min_instance_count               = 0
    max_instance_count               = var.exchange_max_instances
    max_instance_request_concurrency = var.exchange_concurrency
    # Concurrency above 1 needs at least one vCPU.
    available_cpu    = "1"
    available_memory = var.exchange_memory
    timeout_seconds  = var.exchange_timeout_seconds
    # Firebase Hosting reaches the service over the internet.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.exchange.email

    # It publishes the sign-in's lifecycle events (EVENTS_TOPIC).
    environment_variables = merge(local.function_environment, local.events_environment, {
      # functions-framework serves with gunicorn threads: one per concurrent
      # request, or requests queue inside the instance.
      THREADS = tostring(var.exchange_concurrency)
    })
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_gcf_sources_reader,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.exchange_client_secret,
    google_secret_manager_secret_iam_member.exchange_sealing_public_keys,
    google_secret_manager_secret_iam_member.exchange_log_key,
    google_secret_manager_secret_iam_member.exchange_session_key,
    google_project_iam_member.exchange_datastore_user,
  ]
}

#-- run_offline_job: internal, called by Cloud Scheduler --#

resource "google_cloudfunctions2_function" "job" {
  project     = var.project_id
  location    = var.region
  name        = local.job_function_name
  description = "Refreshes tokens and runs the offline tasks for every due user (called by Cloud Scheduler)."

  build_config {
    runtime           = "python312"
    entry_point       = "run_offline_job"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.functions_source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    min_instance_count = 0
    max_instance_count = var.job_max_instances
    # One run per instance: a run parallelises users itself (JOB_CONCURRENCY).
    max_instance_request_concurrency = 1
    available_cpu                    = var.job_cpu
    available_memory                 = var.job_memory
    timeout_seconds                  = var.job_timeout_seconds
    # Reachable from inside the project only (same-project Cloud Scheduler
    # counts as internal); run.invoker is granted to the Scheduler identity only.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.job.email

    environment_variables = local.opening_environment
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_gcf_sources_reader,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.job_client_secret,
    google_secret_manager_secret_iam_member.job_sealing_public_keys,
    google_secret_manager_secret_iam_member.job_sealing_private_keys,
    google_secret_manager_secret_iam_member.job_sealing_key,
    google_secret_manager_secret_iam_member.job_log_key,
    google_project_iam_member.job_datastore_user,
  ]
}

#-- account_api: public, behind Firebase Hosting (/api/**) --#

resource "google_cloudfunctions2_function" "account" {
  #checkov:skip=CKV_GCP_124:Ingress must be ALLOW_ALL: Firebase Hosting's /api/** rewrite reaches the Cloud Run service from the internet. The function serves the page's own origin only (no CORS), requires X-Requested-With and an allowlisted Origin on every POST, and holds no key that opens tokens.
  project     = var.project_id
  location    = var.region
  name        = local.account_function_name
  description = "The account API of the sign-in page (GET /api/me, POST /api/sign-in-attempts, /api/sign-out, /api/sign-out-everywhere, /api/disconnect)."

  build_config {
    runtime         = "python312"
    entry_point     = "account_api"
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
    max_instance_count               = var.account_max_instances
    max_instance_request_concurrency = var.exchange_concurrency
    available_cpu                    = "1"
    available_memory                 = var.exchange_memory
    timeout_seconds                  = var.exchange_timeout_seconds
    # Firebase Hosting reaches the service over the internet.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.account.email

    environment_variables = merge(local.function_environment, {
      THREADS = tostring(var.exchange_concurrency)
      # The internal function that revokes and deletes; called with an ID token
      # for this URL, which Cloud Run checks.
      DISCONNECT_FUNCTION_URL = google_cloudfunctions2_function.disconnect.service_config[0].uri
    })
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_gcf_sources_reader,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.account_session_key,
    google_secret_manager_secret_iam_member.account_log_key,
    google_project_iam_member.account_datastore_user,
    google_cloud_run_service_iam_member.disconnect_invoker_account,
  ]
}

#-- disconnect_user: internal by IAM, called by account_api --#

resource "google_cloudfunctions2_function" "disconnect" {
  #checkov:skip=CKV_GCP_124:Ingress must be ALLOW_ALL: account_api calls this function from Cloud Run, and a same-project Cloud Run service calling another is not internal traffic without a VPC connector. Cloud Run IAM is the gate: run.invoker is granted to account_api's service account only, which sends an ID token for this URL.
  project     = var.project_id
  location    = var.region
  name        = local.disconnect_function_name
  description = "Revokes a user's grant at Google and deletes every record of them (called by account_api with an ID token)."

  build_config {
    runtime         = "python312"
    entry_point     = "disconnect_user"
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
    max_instance_count               = 3
    max_instance_request_concurrency = 8
    available_cpu                    = "1"
    available_memory                 = "512Mi"
    timeout_seconds                  = 60
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.disconnect.email

    environment_variables = merge(local.opening_environment, { THREADS = "8" })
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_gcf_sources_reader,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.disconnect_sealing_private_keys,
    google_secret_manager_secret_iam_member.disconnect_sealing_public_keys,
    google_secret_manager_secret_iam_member.disconnect_sealing_key,
    google_secret_manager_secret_iam_member.disconnect_log_key,
    google_project_iam_member.disconnect_datastore_user,
  ]
}
