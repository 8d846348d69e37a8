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

#-- exchange_code: public, behind Firebase Hosting --#

resource "google_cloudfunctions2_function" "exchange" {
  #checkov:skip=CKV_GCP_124:Ingress must be ALLOW_ALL: Firebase Hosting's /api/exchange rewrite reaches the Cloud Run service from the internet and is not an internal or load-balancer source. The scheduled function, which needs no such caller, is internal-only.
  project     = var.project_id
  location    = var.region
  name        = local.exchange_function_name
  description = "Exchanges the sign-in page's one-time code for the user's tokens (POST /api/exchange)."

  build_config {
    runtime         = "python312"
    entry_point     = "exchange_code"
    service_account = google_service_account.build.id

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

    environment_variables = merge(local.function_environment, {
      # functions-framework serves with gunicorn threads: one per concurrent
      # request, or requests queue inside the instance.
      THREADS = tostring(var.exchange_concurrency)
    })
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build,
    google_secret_manager_secret_iam_member.exchange_client_secret,
    google_secret_manager_secret_iam_member.exchange_sealing_public_keys,
    google_secret_manager_secret_iam_member.exchange_log_key,
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
    runtime         = "python312"
    entry_point     = "run_offline_job"
    service_account = google_service_account.build.id

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

    environment_variables = local.job_environment
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build,
    google_secret_manager_secret_iam_member.job_client_secret,
    google_secret_manager_secret_iam_member.job_sealing_public_keys,
    google_secret_manager_secret_iam_member.job_sealing_private_keys,
    google_secret_manager_secret_iam_member.job_sealing_key,
    google_secret_manager_secret_iam_member.job_log_key,
    google_project_iam_member.job_datastore_user,
  ]
}
