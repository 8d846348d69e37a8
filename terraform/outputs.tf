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

output "job_function_uri" {
  description = "URL of run_offline_job: internal ingress, invocable only by the Scheduler service account. Also the OIDC audience."
  value       = google_cloudfunctions2_function.job.service_config[0].uri
}

output "scheduler_job_name" {
  description = "Cloud Scheduler job that calls run_offline_job (gcloud scheduler jobs run NAME --location REGION runs it now)."
  value       = google_cloud_scheduler_job.offline_job.name
}

output "service_accounts" {
  description = "Service account emails by role."
  value = {
    exchange  = google_service_account.exchange.email
    job       = google_service_account.job.email
    scheduler = google_service_account.scheduler.email
    build     = google_service_account.build.email
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

output "secrets_to_fill" {
  description = "The secrets Terraform creates empty, with the command that adds a version to each."
  value = {
    (google_secret_manager_secret.oauth_client_secret.id)        = "make set-client-secret"
    (google_secret_manager_secret.token_sealing_public_keys.id)  = "make rotate-sealing-key"
    (google_secret_manager_secret.token_sealing_private_keys.id) = "make rotate-sealing-key"
    (google_secret_manager_secret.log_user_ref_key.id)           = "make rotate-log-key"
  }
}
