#-- Names --#

locals {
  prefix = var.name_prefix

  labels = merge({ app = local.prefix, managed-by = "terraform" }, var.labels)

  exchange_function_name = "${local.prefix}-exchange"
  job_function_name      = "${local.prefix}-job"
  scheduler_job_name     = "${local.prefix}-job"

  # Service account IDs (6-30 characters): one per function, one for Cloud
  # Scheduler, one for Cloud Build.
  exchange_sa_id  = "${local.prefix}-exchange"
  job_sa_id       = "${local.prefix}-job"
  scheduler_sa_id = "${local.prefix}-scheduler"
  build_sa_id     = "${local.prefix}-build"

  client_secret_id       = "${local.prefix}-oauth-client-secret"
  sealing_key_id         = "${local.prefix}-token-sealing-key"
  sealing_public_keys_id = "${local.prefix}-token-sealing-public-keys"
  sealing_private_key_id = "${local.prefix}-token-sealing-private-keys"
  log_key_id             = "${local.prefix}-log-user-ref-key"

  source_bucket_name = "${var.project_id}-${local.prefix}-src"

  firestore_database = "(default)"
  firestore_location = coalesce(var.firestore_location, var.region)

  hosting_site_id = coalesce(var.hosting_site_id, "${var.project_id}-signin")
}

#-- Origins --#

locals {
  # The page's origins: each one belongs to this deployment alone, so each may
  # be an Authorized JavaScript origin of the OAuth client. The exchange
  # function accepts requests from exactly these (ALLOWED_ORIGINS).
  custom_domain_origin = var.custom_domain == null ? null : "https://${var.custom_domain}"
  page_origin          = coalesce(local.custom_domain_origin, "https://${local.hosting_site_id}.web.app")
  allowed_origins = compact([
    local.custom_domain_origin,
    "https://${local.hosting_site_id}.web.app",
    "https://${local.hosting_site_id}.firebaseapp.com",
  ])

  # Same origin as the page: Firebase Hosting rewrites this path to the
  # exchange function, so the browser makes no cross-origin request.
  exchange_path = "/api/exchange"
}

#-- Function environment --#

locals {
  # docs/design.md, "Environment of the functions". Both functions get this
  # configuration (config.py reads it once per instance and fails fast); the
  # keys that open tokens are added for the job alone (job_environment).
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
    # A claim must outlive the longest run that can still be working on a user.
    JOB_CLAIM_TTL_SECONDS = tostring(var.job_timeout_seconds + 60)
    # functions-framework adds the execution id to each log line.
    LOG_EXECUTION_ID = "true"
  }

  # The job opens tokens: the private keys' secret (versions read by key id), and
  # the old AES key while tokens sealed with it remain. Never the exchange's.
  job_environment = merge(local.function_environment, {
    TOKEN_SEALING_PRIVATE_KEYS_SECRET = google_secret_manager_secret.token_sealing_private_keys.id
    }, var.token_sealing_key_version == null ? {} : {
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
  }
}
