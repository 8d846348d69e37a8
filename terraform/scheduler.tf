#-- Scheduled job --#

resource "google_cloud_scheduler_job" "offline_job" {
  project          = var.project_id
  region           = var.region
  name             = local.scheduler_job_name
  description      = "Runs ${local.job_function_name} for every due user."
  schedule         = var.job_schedule
  time_zone        = var.job_time_zone
  paused           = var.job_paused
  attempt_deadline = "${var.job_attempt_deadline_seconds}s"

  # Delivery is at least once even without retries, and the function is
  # idempotent per schedule time; a failed run is simply followed by the next
  # scheduled one, which picks up the users that are still due.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.job.service_config[0].uri
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    # Cloud Run checks the token's audience against the service URL.
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.job.service_config[0].uri
    }
  }

  lifecycle {
    precondition {
      condition     = var.job_time_budget_seconds < var.job_attempt_deadline_seconds && var.job_attempt_deadline_seconds < var.job_timeout_seconds
      error_message = "Need job_time_budget_seconds < job_attempt_deadline_seconds < job_timeout_seconds, so a run stops starting users before Scheduler stops waiting, and Scheduler stops waiting before the function is cut off."
    }
  }

  depends_on = [google_cloud_run_service_iam_member.job_invoker_scheduler]
}
