#-- Names --#

locals {
  prefix = var.name_prefix

  labels = merge({ app = local.prefix, managed-by = "terraform" }, var.labels)

  exchange_function_name   = "${local.prefix}-exchange"
  job_function_name        = "${local.prefix}-job"
  account_function_name    = "${local.prefix}-account"
  disconnect_function_name = "${local.prefix}-disconnect"
  worker_function_name     = "${local.prefix}-worker"
  risc_function_name       = "${local.prefix}-risc"
  scheduler_job_name       = "${local.prefix}-job"

  # Fan-out (fanout.tf): created with job_mode = "pubsub" only.
  fanout                      = var.job_mode == "pubsub"
  work_topic_id               = "${local.prefix}-work"
  work_subscription_id        = "${local.prefix}-work-push"
  dead_letter_topic_id        = "${local.prefix}-work-dead-letter"
  dead_letter_subscription_id = "${local.prefix}-work-dead-letter"
  work_topic_name             = "projects/${var.project_id}/topics/${local.work_topic_id}"
  pubsub_service_agent        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  max_google_calls_in_flight  = local.fanout ? var.worker_max_instances * var.worker_concurrency : var.job_max_instances * var.job_concurrency

  # Service account IDs (6-30 characters): one per function, one for Cloud
  # Scheduler, one for Cloud Build. The disconnect function's is "-revoker":
  # "-disconnect" would pass 30 characters with the longest prefix.
  exchange_sa_id   = "${local.prefix}-exchange"
  job_sa_id        = "${local.prefix}-job"
  account_sa_id    = "${local.prefix}-account"
  disconnect_sa_id = "${local.prefix}-revoker"
  worker_sa_id     = "${local.prefix}-worker"
  push_sa_id       = "${local.prefix}-push"
  scheduler_sa_id  = "${local.prefix}-scheduler"
  build_sa_id      = "${local.prefix}-build"
  # Cross-Account Protection: the receiver, and the account that registers it
  # ("-risc-reg": "-risc-admin" would pass 30 characters with the longest prefix).
  risc_sa_id       = "${local.prefix}-risc"
  risc_admin_sa_id = "${local.prefix}-risc-reg"

  client_secret_id       = "${local.prefix}-oauth-client-secret"
  sealing_key_id         = "${local.prefix}-token-sealing-key"
  sealing_public_keys_id = "${local.prefix}-token-sealing-public-keys"
  sealing_private_key_id = "${local.prefix}-token-sealing-private-keys"
  log_key_id             = "${local.prefix}-log-user-ref-key"
  session_key_id         = "${local.prefix}-session-key"
  token_id_key_id        = "${local.prefix}-refresh-token-id-key"

  source_bucket_name = "${var.project_id}-${local.prefix}-src"
  # Where Cloud Functions stages a gen2 function's source before building it.
  # https://cloud.google.com/functions/docs/building
  gcf_sources_bucket  = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
  image_repository_id = "${local.prefix}-functions"

  firestore_database = "(default)"
  firestore_location = coalesce(var.firestore_location, var.region)

  hosting_site_id = coalesce(var.hosting_site_id, "${var.project_id}-signin")
}

# The project number names the Cloud Functions staging bucket. Read once the APIs are on: a new
# project may not have the Resource Manager API enabled yet.
data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.enabled]
}

#-- Origins --#

locals {
  # The page's origins: each one belongs to this deployment alone, so each may
  # be an Authorized JavaScript origin of the OAuth client. The exchange
  # function accepts requests from exactly these (ALLOWED_ORIGINS).
  custom_domain_origin = var.custom_domain == null ? null : "https://${var.custom_domain}"
  page_origin          = coalesce(local.custom_domain_origin, "https://${local.hosting_site_id}.web.app")
  allowed_origins = concat(compact([
    local.custom_domain_origin,
    "https://${local.hosting_site_id}.web.app",
    "https://${local.hosting_site_id}.firebaseapp.com",
  ]), var.app_origins)

  # Same origin as the page: Firebase Hosting rewrites these paths to the
  # exchange function and the account API, so the browser makes no
  # cross-origin request and the __session cookie reaches both.
  exchange_path    = "/api/exchange"
  account_api_path = "/api"
}

#-- Function environment --#

locals {
  # How long a pending disconnect may wait for the next run (the account API
  # says "by HH:MM"): the schedule's period, else an hour.
  job_schedule_period_seconds = local.schedule_period_seconds > 0 ? local.schedule_period_seconds : 3600
}

locals {
  # docs/design.md, "Environment of the functions". Every function gets this
  # configuration (config.py reads it once per instance and fails fast); the
  # keys that open tokens are added for the functions that open them alone
  # (opening_environment).
  function_environment = {
    GOOGLE_CLOUD_PROJECT             = var.project_id
    OAUTH_CLIENT_ID                  = var.oauth_client_id
    OAUTH_CLIENT_SECRET_VERSION      = "${google_secret_manager_secret.oauth_client_secret.id}/versions/${var.oauth_client_secret_version}"
    TOKEN_SEALING_PUBLIC_KEY_VERSION = "${google_secret_manager_secret.token_sealing_public_keys.id}/versions/${var.token_sealing_public_key_version}"
    LOG_USER_REF_KEY_VERSION         = "${google_secret_manager_secret.log_user_ref_key.id}/versions/${var.log_user_ref_key_version}"
    ALLOWED_ORIGINS                  = join(",", local.allowed_origins)
    OAUTH_REDIRECT_URI               = var.oauth_redirect_uri
    OAUTH_SCOPES                     = join(" ", var.oauth_scopes)
    OAUTH_APP_TESTING_MODE           = tostring(var.oauth_app_testing_mode)
    HTTP_TIMEOUT_SECONDS             = tostring(var.http_timeout_seconds)
    REQUEST_BODY_TIMEOUT_SECONDS     = tostring(var.request_body_timeout_seconds)
    ALLOWED_HOSTED_DOMAINS           = join(",", var.allowed_hosted_domains)
    USERS_COLLECTION                 = var.users_collection
    OFFLINE_TASKS                    = join(",", var.offline_tasks)
    JOB_TIME_BUDGET_SECONDS          = tostring(var.job_time_budget_seconds)
    JOB_CONCURRENCY                  = tostring(var.job_concurrency)
    JOB_PAGE_SIZE                    = tostring(var.job_page_size)
    JOB_INTERVAL_SECONDS             = tostring(var.job_interval_seconds)
    JOB_SCHEDULE_PERIOD_SECONDS      = tostring(local.job_schedule_period_seconds)
    SESSION_KEY_VERSION              = "${google_secret_manager_secret.session_key.id}/versions/${var.session_key_version}"
    SESSION_LIFETIME_SECONDS         = tostring(var.session_lifetime_days * 86400)
    SIGN_IN_ATTEMPT_SECONDS          = "600"
    JOB_MODE                         = var.job_mode
    JOB_WORK_TOPIC                   = local.fanout ? local.work_topic_name : ""
    JOB_MESSAGE_USERS                = tostring(var.job_message_users)
    JOB_MAX_DELIVERY_ATTEMPTS        = tostring(var.worker_max_delivery_attempts)
    # With risc_enabled, the key of the stored refresh-token identifiers (the
    # exchange and the job store them, the RISC receiver matches them); empty,
    # so none are stored, without it.
    REFRESH_TOKEN_ID_KEY_VERSION = join("", [for secret in google_secret_manager_secret.refresh_token_id_key : "${secret.id}/versions/${var.refresh_token_id_key_version}"])
    # A claim must outlive the longest run that can still be working on a user.
    JOB_CLAIM_TTL_SECONDS = tostring(var.job_timeout_seconds + 60)
    # functions-framework adds the execution id to each log line.
    LOG_EXECUTION_ID = "true"
    # The lifecycle events' CloudEvents types: this prefix, then user.connected and so on.
    EVENT_TYPE_PREFIX = var.event_type_prefix
  }

  # The job and disconnect_user open tokens: the private keys' secret (versions
  # read by key id), and the old AES key while tokens sealed with it remain.
  # Never a public function's.
  opening_environment = merge(local.function_environment, {
    TOKEN_SEALING_PRIVATE_KEYS_SECRET = google_secret_manager_secret.token_sealing_private_keys.id
    }, local.events_environment, var.token_sealing_key_version == null ? {} : {
    TOKEN_SEALING_KEY_VERSION = "${google_secret_manager_secret.token_sealing_key.id}/versions/${var.token_sealing_key_version}"
  })

  # What the key operations need (make rotate-sealing-key and friends): names,
  # never a value.
  key_operations_environment = {
    GOOGLE_CLOUD_PROJECT              = var.project_id
    USERS_COLLECTION                  = var.users_collection
    TOKEN_SEALING_PUBLIC_KEY_VERSION  = local.function_environment.TOKEN_SEALING_PUBLIC_KEY_VERSION
    TOKEN_SEALING_PRIVATE_KEYS_SECRET = google_secret_manager_secret.token_sealing_private_keys.id
    TOKEN_SEALING_KEY_VERSION         = "${google_secret_manager_secret.token_sealing_key.id}/versions/${coalesce(var.token_sealing_key_version, "latest")}"
    LOG_USER_REF_KEY_VERSION          = local.function_environment.LOG_USER_REF_KEY_VERSION
    REFRESH_TOKEN_ID_KEY_VERSION      = local.function_environment.REFRESH_TOKEN_ID_KEY_VERSION
  }
}

#-- Schedule period (the alerts count intervals of it) --#

locals {
  # "*/N * * * *" runs every N minutes; any other schedule must state its period.
  schedule_every_minutes  = try(tonumber(regex("^\\*/([0-9]+) \\* \\* \\* \\*$", trimspace(var.job_schedule))[0]), null)
  schedule_period_seconds = coalesce(var.job_schedule_period_seconds, try(local.schedule_every_minutes * 60, null), 0)
}
