#-- Page --#

output "page_url" {
  description = "URL of the sign-in page."
  value       = "${local.page_origin}/"
}

output "oauth_javascript_origin" {
  description = "The origin to add to the OAuth client's Authorized JavaScript origins (console: APIs & Services > Credentials > your Web client)."
  value       = local.page_origin
}

output "oauth_javascript_origins" {
  description = "Every origin the exchange function accepts (ALLOWED_ORIGINS). Register each one the page will be opened from; no redirect URI is needed."
  value       = local.allowed_origins
}

output "hosting_site_default_url" {
  description = "Default URL Firebase Hosting reports for the site."
  value       = google_firebase_hosting_site.page.default_url
}

output "custom_domain_dns_records" {
  description = "DNS records to create for custom_domain (null without one). Firebase Hosting verifies them and then issues the certificate."
  value       = try(google_firebase_hosting_custom_domain.page[0].required_dns_updates, null)
}

#-- Functions --#

output "exchange_url" {
  description = "Where the page sends the one-time code: its own origin, rewritten by Firebase Hosting to exchange_code."
  value       = "${local.page_origin}${local.exchange_path}"
}

output "exchange_function_uri" {
  description = "Direct URL of the exchange_code Cloud Run service (public; the Origin allowlist still applies)."
  value       = google_cloudfunctions2_function.exchange.service_config[0].uri
}

output "account_api_url" {
  description = "The account API on the page's origin (GET /api/me, POST /api/sign-out, /api/disconnect ...), rewritten by Firebase Hosting to account_api."
  value       = "${local.page_origin}${local.account_api_path}"
}

output "disconnect_function_uri" {
  description = "URL of disconnect_user: invocable by account_api's service account only (run.invoker), which sends an ID token for this URL."
  value       = google_cloudfunctions2_function.disconnect.service_config[0].uri
}

output "job_function_uri" {
  description = "URL of run_offline_job: internal ingress, invocable only by the Scheduler service account. Also the OIDC audience."
  value       = google_cloudfunctions2_function.job.service_config[0].uri
}

output "worker_function_uri" {
  description = "URL of run_offline_worker (job_mode = \"pubsub\"; null otherwise): internal ingress, invocable only by the push identity. Also the push subscription's endpoint and OIDC audience."
  value       = try(google_cloudfunctions2_function.worker[0].service_config[0].uri, null)
}

output "work_topic" {
  description = "The job's work topic (job_mode = \"pubsub\"; null otherwise)."
  value       = try(google_pubsub_topic.work[0].id, null)
}

output "dead_letter_subscription" {
  description = "Pull subscription of the dead-letter topic, where failed work messages wait for the operator (job_mode = \"pubsub\"; null otherwise)."
  value       = try(google_pubsub_subscription.dead_letter[0].id, null)
}

output "max_google_calls_in_flight" {
  description = "The most calls to Google the job can have in flight: worker_max_instances x worker_concurrency in pubsub mode, job_max_instances x job_concurrency inline."
  value       = local.max_google_calls_in_flight
}

output "dashboard_url" {
  description = "The Cloud Monitoring dashboard of the deployment's series."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.operations.id), length(split("/", google_monitoring_dashboard.operations.id)) - 1)}?project=${var.project_id}"
}

output "risc_receiver_url" {
  description = "URL of risc_receiver, with risc_enabled (null without): register it with offline-access risc register --url URL (the cli_env output carries it)."
  value       = one([for function in google_cloudfunctions2_function.risc : function.service_config[0].uri])
}

output "risc_admin_service_account" {
  description = "The service account that registers the RISC stream (RISC Configuration Admin), with risc_enabled: offline-access risc register --impersonate EMAIL, as one of risc_admins."
  value       = one(google_service_account.risc_admin[*].email)
}

output "scheduler_job_name" {
  description = "Cloud Scheduler job that calls run_offline_job (gcloud scheduler jobs run NAME --location REGION runs it now)."
  value       = google_cloud_scheduler_job.offline_job.name
}

output "image_repository" {
  description = "Artifact Registry repository of the functions' images (the only one the build account may write to)."
  value       = google_artifact_registry_repository.functions.id
}

output "service_accounts" {
  description = "Service account emails by role."
  value = {
    exchange   = google_service_account.exchange.email
    job        = google_service_account.job.email
    account    = google_service_account.account.email
    disconnect = google_service_account.disconnect.email
    scheduler  = google_service_account.scheduler.email
    build      = google_service_account.build.email
    worker     = try(google_service_account.worker[0].email, null)
    push       = try(google_service_account.push[0].email, null)
    risc       = one(google_service_account.risc[*].email)
    risc_admin = one(google_service_account.risc_admin[*].email)
  }
}

#-- Secrets to fill --#

output "project_id" {
  description = "Project the deployment lives in (used by the Makefile's secret targets)."
  value       = var.project_id
}

output "region" {
  description = "Region of the functions and the Scheduler job."
  value       = var.region
}

output "oauth_client_secret_id" {
  description = "Secret Manager secret ID of the OAuth client secret. Add its value with make set-client-secret."
  value       = google_secret_manager_secret.oauth_client_secret.secret_id
}

output "token_sealing_key_secret_id" {
  description = "Secret Manager secret ID of the first releases' AES sealing keys (opened by the job for tokens sealed before HPKE; nothing seals with them)."
  value       = google_secret_manager_secret.token_sealing_key.secret_id
}

output "token_sealing_key_secrets" {
  description = "Secret IDs of the sealing key pairs: the public halves (read by every function that seals) and the private halves (read by the job only)."
  value = {
    public  = google_secret_manager_secret.token_sealing_public_keys.secret_id
    private = google_secret_manager_secret.token_sealing_private_keys.secret_id
  }
}

output "key_operations_env" {
  description = "The variables the key operations (make rotate-sealing-key, sealing-key-status, retire-sealing-key, rotate-log-key) read, as NAME=value words: secret and version names, never a value."
  value       = join(" ", [for name, value in local.key_operations_environment : "${name}=${value}"])
}

output "session_key_secret_id" {
  description = "Secret Manager secret ID of the session-cookie key. Create or rotate it with make rotate-session-key."
  value       = google_secret_manager_secret.session_key.secret_id
}

output "unpinned_secret_versions" {
  description = "The secret version variables still set to \"latest\" (space-separated; empty once all are pinned). make deploy warns while it is not empty."
  value = join(" ", [
    for name, version in merge({
      oauth_client_secret_version      = var.oauth_client_secret_version
      token_sealing_public_key_version = var.token_sealing_public_key_version
      log_user_ref_key_version         = var.log_user_ref_key_version
      session_key_version              = var.session_key_version
      }, var.risc_enabled ? {
      refresh_token_id_key_version = var.refresh_token_id_key_version
    } : {}) : name if version == "latest"
  ])
}

output "secrets_to_fill" {
  description = "The secrets Terraform creates empty, with the command that adds a version to each."
  value = merge({
    (google_secret_manager_secret.oauth_client_secret.id)        = "make set-client-secret"
    (google_secret_manager_secret.token_sealing_public_keys.id)  = "make rotate-sealing-key"
    (google_secret_manager_secret.token_sealing_private_keys.id) = "make rotate-sealing-key"
    (google_secret_manager_secret.log_user_ref_key.id)           = "make rotate-log-key"
    (google_secret_manager_secret.session_key.id)                = "make rotate-session-key"
  }, { for secret in google_secret_manager_secret.refresh_token_id_key : secret.id => "make create-token-id-key" })
}

output "job_paused" {
  description = "Whether the Cloud Scheduler job is paused (job_paused): true until the secrets are set and job_paused = false is applied."
  value       = var.job_paused
}

output "cli_env" {
  description = "The functions' settings as KEY=VALUE lines, for the operator CLI: terraform -chdir=terraform output -raw cli_env > deploy.env, then .venv/bin/offline-access --env-file deploy.env users list. No secret: only version names."
  value = join("", concat(
    [for key in sort(keys(local.function_environment)) : "${key}=${local.function_environment[key]}\n" if key != "LOG_EXECUTION_ID"],
    # With risc_enabled: where `offline-access risc register` points the stream, and the
    # account it impersonates.
    [for function in google_cloudfunctions2_function.risc : "RISC_RECEIVER_URL=${function.service_config[0].uri}\n"],
    [for account in google_service_account.risc_admin : "RISC_SERVICE_ACCOUNT=${account.email}\n"],
  ))
}

output "token_api_url" {
  description = "URL of token_api, for the app's backend (OFFLINE_ACCESS_TOKEN_API_URL of the Python client); invocable by app_backend_service_accounts only, with an ID token for this URL."
  value       = google_cloudfunctions2_function.token_api.service_config[0].uri
}

output "events_topic" {
  description = "The lifecycle events' Pub/Sub topic (projects/P/topics/T): attach a subscription to it (README, Integrate with your app)."
  value       = google_pubsub_topic.events.id
}
