#-- Project and placement --#

variable "project_id" {
  description = "ID of the Google Cloud project to deploy into. Billing must be enabled (Cloud Functions gen2 and Cloud Build need it)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the functions, the Cloud Scheduler job, the source buckets and the image repository, e.g. us-central1. It must be one where Firebase Hosting can rewrite to Cloud Run, or the page cannot reach the exchange function."
  type        = string
  default     = "us-central1"

  validation {
    # Firebase Hosting rewrites to Cloud Run (a gen2 function is a Cloud Run service) only in
    # the regions that "Configure Hosting behavior" lists under "Direct requests to a Cloud Run
    # container": https://firebase.google.com/docs/hosting/full-config#rewrite-cloud-run-container
    # Cloud Functions gen2 also runs in africa-south1, europe-north2 and northamerica-south1,
    # which that list lacks: there `apply` would create the functions, then fail at publish_site.
    condition = contains([
      "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3",
      "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2",
      "australia-southeast1", "australia-southeast2",
      "europe-central2", "europe-north1", "europe-southwest1", "europe-west1", "europe-west12",
      "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9",
      "me-central1", "me-west1",
      "northamerica-northeast1", "northamerica-northeast2",
      "southamerica-east1", "southamerica-west1",
      "us-central1", "us-east1", "us-east4", "us-east5", "us-south1",
      "us-west1", "us-west2", "us-west3", "us-west4",
    ], var.region)
    error_message = "region must be a region where Firebase Hosting can rewrite to Cloud Run, such as us-central1 or europe-west1 (the list: https://firebase.google.com/docs/hosting/full-config#rewrite-cloud-run-container)."
  }
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region such as europe-west1, or a multi-region such as nam5 or eur3). Fixed once the database exists. Defaults to var.region."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_location == null || can(regex("^[a-z0-9-]+$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location ID such as nam5, eur3 or us-central1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, secrets, Scheduler job, bucket). Change it to deploy a second copy into the same project."
  type        = string
  default     = "offline-access"

  validation {
    # Service account IDs are 6-30 characters: the longest suffix is "-scheduler".
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-20 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels for the resources that take them: functions, secrets, source bucket (merged over app = name_prefix, managed-by = terraform)."
  type        = map(string)
  default     = {}
}

#-- OAuth client --#

variable "oauth_client_id" {
  description = "Client ID of the Web application OAuth client created in the console (APIs & Services > Credentials). Public: it is written into the page's config.js."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+-[a-z0-9]+\\.apps\\.googleusercontent\\.com$", var.oauth_client_id))
    error_message = "oauth_client_id must look like 123456789012-abc123.apps.googleusercontent.com (the client secret never goes here: use make set-client-secret)."
  }
}

variable "oauth_client_secret_version" {
  description = <<-EOT
    Secret Manager version of the OAuth client secret that the functions read: a version number
    (e.g. "3") or "latest". Pinning a number is better: a rotation then becomes add version ->
    set this -> make deploy -> disable the old version, and a bad value can be rolled back.
    "latest" makes the first deployment possible before the secret has a version.
  EOT
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.oauth_client_secret_version))
    error_message = "oauth_client_secret_version must be \"latest\" or a version number such as \"1\"."
  }
}

variable "token_sealing_public_key_version" {
  description = <<-EOT
    Version of the token-sealing public-keys secret whose key seals new tokens (the primary): a
    version number or "latest". With "latest", every instance re-reads it within 10 minutes of
    make rotate-sealing-key; a pinned number changes with make deploy. Each version names the
    key id (the private-keys secret's version number) it belongs to.
  EOT
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.token_sealing_public_key_version))
    error_message = "token_sealing_public_key_version must be \"latest\" or a version number such as \"1\"."
  }
}

variable "log_user_ref_key_version" {
  description = "Version of the log key (LOG_USER_REF_KEY_VERSION): logs name users by an HMAC of their sub under it. A version number or \"latest\"; add one with make rotate-log-key."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.log_user_ref_key_version))
    error_message = "log_user_ref_key_version must be \"latest\" or a version number such as \"1\"."
  }
}

variable "token_sealing_key_version" {
  description = <<-EOT
    Only for deployments made before HPKE sealing: a version of the old AES token-sealing-key
    secret (e.g. "1" or "latest"), given to the job alone so that tokens sealed with it still open
    and are re-sealed under the primary key pair on each user's next run. null (the default) for
    new deployments, and again once make sealing-key-status shows no aes-N key in use and make
    retire-sealing-key has retired them.
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.token_sealing_key_version == null || can(regex("^(latest|[1-9][0-9]*)$", coalesce(var.token_sealing_key_version, "latest")))
    error_message = "token_sealing_key_version must be null, \"latest\" or a version number such as \"1\"."
  }
}

variable "session_key_version" {
  description = <<-EOT
    Secret Manager version of the session key that seals new __session cookies (SESSION_KEY_VERSION):
    a version number or "latest". The version number is the key id in each cookie, so cookies
    sealed by an older version still open while it stays enabled; disabling it signs those
    sessions out (make rotate-session-key never disables one).
  EOT
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.session_key_version))
    error_message = "session_key_version must be \"latest\" or a version number such as \"1\"."
  }
}

variable "session_lifetime_days" {
  description = "How long a sign-in keeps the browser signed in to the page (SESSION_LIFETIME_SECONDS, in days). The app's offline access does not depend on it."
  type        = number
  default     = 14

  validation {
    condition     = var.session_lifetime_days >= 1 && var.session_lifetime_days <= 90 && floor(var.session_lifetime_days) == var.session_lifetime_days
    error_message = "session_lifetime_days must be a whole number from 1 to 90."
  }
}

variable "oauth_scopes" {
  description = "Scopes the page requests and the functions expect (OAUTH_SCOPES). openid is required: the exchange identifies users by the ID token."
  type        = list(string)
  default     = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]

  validation {
    condition     = contains(var.oauth_scopes, "openid") && alltrue([for s in var.oauth_scopes : length(regexall("\\s", s)) == 0 && s != ""])
    error_message = "oauth_scopes must include \"openid\" and each scope must be a single non-empty word."
  }
}

variable "oauth_redirect_uri" {
  description = "redirect_uri sent with the code exchange (OAUTH_REDIRECT_URI). Popup-mode codes from Google Identity Services use \"postmessage\"."
  type        = string
  default     = "postmessage"

  validation {
    condition     = var.oauth_redirect_uri == "postmessage" || can(regex("^https://[^\\s]+$", var.oauth_redirect_uri))
    error_message = "oauth_redirect_uri must be \"postmessage\" or an https:// URL."
  }
}

variable "allowed_hosted_domains" {
  description = "Google Workspace domains (the ID token's hd claim) allowed to sign in, e.g. [\"example.com\"]. Empty: any Google account."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.allowed_hosted_domains : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", d))])
    error_message = "allowed_hosted_domains must be lowercase domain names such as example.com."
  }
}

variable "oauth_app_testing_mode" {
  description = "Set true while the OAuth consent screen is in Testing (OAUTH_APP_TESTING_MODE): Google then expires refresh tokens after 7 days, and the job records such users as needs_reauth with reason testing_mode_expiry."
  type        = bool
  default     = false
}

variable "http_timeout_seconds" {
  description = "Timeout of each call the functions make to Google's HTTP endpoints (HTTP_TIMEOUT_SECONDS). An exchange makes a few such calls and must finish within exchange_timeout_seconds."
  type        = number
  default     = 10

  validation {
    condition     = var.http_timeout_seconds >= 1 && var.http_timeout_seconds <= 30 && floor(var.http_timeout_seconds) == var.http_timeout_seconds
    error_message = "http_timeout_seconds must be a whole number from 1 to 30."
  }
}

#-- Sign-in page hosting --#

variable "app_name" {
  description = "The app's name on the sign-in page (title and text), as on the OAuth consent screen."
  type        = string
  default     = "Offline Access Demo"

  validation {
    condition     = length(trimspace(var.app_name)) > 0 && length(var.app_name) <= 60
    error_message = "app_name must be 1 to 60 characters."
  }
}

variable "brand_logo_url" {
  description = "The app's logo on the page: a file of static_site/ (e.g. \"logo.svg\"; published with the page) or a data: URL. The page's Content-Security-Policy allows only these."
  type        = string
  default     = "favicon.svg"

  validation {
    condition     = startswith(var.brand_logo_url, "data:image/") || (can(regex("^[A-Za-z0-9_./-]+$", var.brand_logo_url)) && length(regexall("\\.\\.", var.brand_logo_url)) == 0 && !startswith(var.brand_logo_url, "//"))
    error_message = "brand_logo_url must be a path of a file in static_site/ (no \"..\", no host) or a data:image/ URL."
  }
}

variable "privacy_policy_url" {
  description = "Link to the app's privacy policy, shown on the page (the consent screen asks for the same link to publish the app). Null: no link."
  type        = string
  default     = null

  validation {
    condition     = var.privacy_policy_url == null || can(regex("^https://[^\\s]+$", var.privacy_policy_url))
    error_message = "privacy_policy_url must be an https:// URL."
  }
}

variable "terms_url" {
  description = "Link to the app's terms of service, shown on the page. Null: no link."
  type        = string
  default     = null

  validation {
    condition     = var.terms_url == null || can(regex("^https://[^\\s]+$", var.terms_url))
    error_message = "terms_url must be an https:// URL."
  }
}

variable "support_url" {
  description = "Where users get help: an https:// URL or a mailto: address, shown on the page. Null: no link."
  type        = string
  default     = null

  validation {
    condition     = var.support_url == null || can(regex("^(https://|mailto:)[^\\s]+$", var.support_url))
    error_message = "support_url must be an https:// URL or a mailto: address."
  }
}

variable "request_body_timeout_seconds" {
  description = "How long the exchange waits for a request's body (REQUEST_BODY_TIMEOUT_SECONDS): a body shorter than its Content-Length, or one that stalls, is answered 408 after this, freeing the worker."
  type        = number
  default     = 10

  validation {
    condition     = var.request_body_timeout_seconds >= 1 && var.request_body_timeout_seconds <= 60 && floor(var.request_body_timeout_seconds) == var.request_body_timeout_seconds
    error_message = "request_body_timeout_seconds must be a whole number of seconds from 1 to 60."
  }
}

variable "create_firebase_project" {
  description = "Add Firebase to the project (needed for Firebase Hosting). Set false when Firebase is already enabled on it."
  type        = bool
  default     = true
}

variable "hosting_site_id" {
  description = "Firebase Hosting site ID: the page is served at https://SITE_ID.web.app (and .firebaseapp.com). Globally unique. Defaults to \"<project_id>-signin\"."
  type        = string
  default     = null

  validation {
    condition     = var.hosting_site_id == null || can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.hosting_site_id))
    error_message = "hosting_site_id must be a DNS label: lowercase letters, digits and hyphens, at most 63 characters."
  }
}

variable "custom_domain" {
  description = "Optional domain (e.g. signin.example.com) to connect to the Firebase Hosting site. Its DNS records are in the output custom_domain_dns_records; its origin is added to ALLOWED_ORIGINS."
  type        = string
  default     = null

  validation {
    condition     = var.custom_domain == null || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.custom_domain))
    error_message = "custom_domain must be a lowercase host name such as signin.example.com, without scheme or path."
  }
}

#-- Function builds --#

variable "create_gcf_sources_bucket" {
  description = "Create the bucket Cloud Functions copies each function's source into before building it (gcf-v2-sources-PROJECT_NUMBER-REGION), so that the build account can be granted read access on it before the first build. Set false when the project already has that bucket (an earlier gen2 function in this region); the grant is then made on the existing bucket."
  type        = bool
  default     = true
}

#-- Firestore --#

variable "create_firestore_database" {
  description = "Create the (default) Firestore database in native mode. Set false when the project already has one (it must be in native mode)."
  type        = bool
  default     = true
}

variable "firestore_deletion_policy" {
  description = "What terraform destroy does with the Firestore database: ABANDON keeps it (and the users' sealed tokens, unreadable once the sealing key is destroyed), DELETE deletes it."
  type        = string
  default     = "ABANDON"

  validation {
    condition     = contains(["ABANDON", "DELETE"], var.firestore_deletion_policy)
    error_message = "firestore_deletion_policy must be ABANDON or DELETE."
  }
}

variable "manage_firestore_rules" {
  description = "Release Firestore security rules that deny every client SDK access (the functions use IAM and are not affected). Set false if the database's rules are managed elsewhere."
  type        = bool
  default     = true
}

variable "users_collection" {
  description = "Firestore collection of the user documents (USERS_COLLECTION); the composite index is created on it."
  type        = string
  default     = "users"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.users_collection)) && !startswith(var.users_collection, "__")
    error_message = "users_collection must be a top-level collection ID: letters, digits, _ and -, not starting with __."
  }
}

#-- Exchange function --#

variable "exchange_max_instances" {
  description = "Upper bound on exchange_code instances: caps cost and abuse of the public endpoint."
  type        = number
  default     = 10

  validation {
    condition     = var.exchange_max_instances >= 1 && var.exchange_max_instances <= 100 && floor(var.exchange_max_instances) == var.exchange_max_instances
    error_message = "exchange_max_instances must be a whole number from 1 to 100."
  }
}

variable "exchange_concurrency" {
  description = "Requests one exchange_code instance serves at once (one vCPU; the requests mostly wait on Google and Firestore)."
  type        = number
  default     = 40

  validation {
    condition     = var.exchange_concurrency >= 1 && var.exchange_concurrency <= 1000 && floor(var.exchange_concurrency) == var.exchange_concurrency
    error_message = "exchange_concurrency must be a whole number from 1 to 1000."
  }
}

variable "exchange_memory" {
  description = "Memory of an exchange_code instance, e.g. 512Mi."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.exchange_memory))
    error_message = "exchange_memory must be a quantity such as 512Mi or 1Gi."
  }
}

variable "exchange_timeout_seconds" {
  description = "Request timeout of exchange_code. Firebase Hosting gives up on a rewritten request after 60 s, so more is useless."
  type        = number
  default     = 60

  validation {
    condition     = var.exchange_timeout_seconds >= 10 && var.exchange_timeout_seconds <= 60
    error_message = "exchange_timeout_seconds must be from 10 to 60."
  }
}

#-- Account API --#

variable "account_max_instances" {
  description = "Upper bound on account_api instances (the page's /api/me, sign-out and disconnect): caps cost and abuse of the public endpoint."
  type        = number
  default     = 10

  validation {
    condition     = var.account_max_instances >= 1 && var.account_max_instances <= 100 && floor(var.account_max_instances) == var.account_max_instances
    error_message = "account_max_instances must be a whole number from 1 to 100."
  }
}

#-- Cross-Account Protection (RISC) --#

variable "risc_enabled" {
  description = "Deploy Cross-Account Protection: the RISC API, the public risc_receiver function that Google pushes security events to, its service accounts (one with RISC Configuration Admin, to register it) and the refresh-token identifier key. Off by default; after apply, run make create-token-id-key and offline-access risc register (terraform/README.md)."
  type        = bool
  default     = false
}

variable "refresh_token_id_key_version" {
  description = "Version of the refresh-token identifier key (REFRESH_TOKEN_ID_KEY_VERSION), with risc_enabled: a version number or \"latest\". make create-token-id-key adds it once; a new version leaves tokens stored earlier unmatched by token-revoked events until their next sign-in."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(latest|[1-9][0-9]*)$", var.refresh_token_id_key_version))
    error_message = "refresh_token_id_key_version must be \"latest\" or a version number such as \"1\"."
  }
}

variable "risc_admins" {
  description = "Who may register and verify the RISC stream (offline-access risc register --impersonate): IAM members such as \"user:ops@example.com\" or \"group:identity@example.com\", given Service Account Token Creator on the registration service account. No key file is ever made."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for member in var.risc_admins : can(regex("^(user|group|serviceAccount|domain):[^\\s]+$", member))])
    error_message = "Each of risc_admins must be an IAM member: user:, group:, serviceAccount: or domain: followed by its name."
  }
}

variable "risc_client_ids" {
  description = "The project's other OAuth client ids (an Android or iOS client of the same app), whose users' security events the receiver accepts too (RISC_CLIENT_IDS). The web client, oauth_client_id, is always accepted."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.risc_client_ids : can(regex("^[0-9a-z-]+\\.apps\\.googleusercontent\\.com$", id))])
    error_message = "Each of risc_client_ids must be an OAuth client id ending in .apps.googleusercontent.com."
  }
}

variable "risc_max_instances" {
  description = "Upper bound on risc_receiver instances: Google sends few events, and redelivers any that are not acknowledged."
  type        = number
  default     = 3

  validation {
    condition     = var.risc_max_instances >= 1 && var.risc_max_instances <= 100 && floor(var.risc_max_instances) == var.risc_max_instances
    error_message = "risc_max_instances must be a whole number from 1 to 100."
  }
}

#-- Scheduled job --#

variable "offline_tasks" {
  description = "Per-user tasks the scheduled job runs, by registered name (OFFLINE_TASKS)."
  type        = list(string)
  default     = ["drive_appdata", "userinfo"]

  validation {
    condition     = length(var.offline_tasks) > 0 && alltrue([for t in var.offline_tasks : can(regex("^[a-z][a-z0-9_]*$", t))])
    error_message = "offline_tasks must list at least one task name (lowercase letters, digits and _)."
  }
}

variable "job_schedule" {
  description = "Cron schedule of the Cloud Scheduler job. Every 15 minutes by default: each run only processes users whose next_run_at is due, so a user is refreshed every job_interval_seconds and a failed user is retried within 15 minutes."
  type        = string
  default     = "*/15 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.job_schedule))) == 5
    error_message = "job_schedule must be a five-field cron expression such as \"*/15 * * * *\"."
  }
}

variable "job_time_zone" {
  description = "Time zone of job_schedule (tz database name)."
  type        = string
  default     = "Etc/UTC"
}

variable "job_paused" {
  description = "Keep the Cloud Scheduler job paused. True by default, so that a first deployment does not run the job against empty secrets: set false once make set-client-secret, make rotate-sealing-key and make rotate-session-key have run, then make deploy."
  type        = bool
  default     = true
}

variable "job_timeout_seconds" {
  description = "Request timeout of run_offline_job. Must exceed job_attempt_deadline_seconds."
  type        = number
  default     = 540

  validation {
    condition     = var.job_timeout_seconds >= 60 && var.job_timeout_seconds <= 3600
    error_message = "job_timeout_seconds must be from 60 to 3600 (the gen2 HTTP maximum)."
  }
}

variable "job_attempt_deadline_seconds" {
  description = "How long Cloud Scheduler waits for run_offline_job (attempt_deadline). Below job_timeout_seconds so Scheduler never gives up on a run that is still allowed to work; above job_time_budget_seconds so a run that respects its budget is reported as a success."
  type        = number
  default     = 480

  validation {
    condition     = var.job_attempt_deadline_seconds >= 15 && var.job_attempt_deadline_seconds <= 1800
    error_message = "job_attempt_deadline_seconds must be from 15 to 1800 (Cloud Scheduler's HTTP limits)."
  }
}

variable "job_time_budget_seconds" {
  description = "The run's hard deadline, in seconds (JOB_TIME_BUDGET_SECONDS): no user starts within one http_timeout_seconds of it, no call to Google starts after it, and every call's timeout ends by it. Below job_attempt_deadline_seconds, leaving time for the last writes."
  type        = number
  default     = 300

  validation {
    condition     = var.job_time_budget_seconds >= 10
    error_message = "job_time_budget_seconds must be at least 10."
  }
}

variable "job_concurrency" {
  description = "Users one run processes at once (JOB_CONCURRENCY)."
  type        = number
  default     = 32

  validation {
    condition     = var.job_concurrency >= 1 && var.job_concurrency <= 64
    error_message = "job_concurrency must be from 1 to 64."
  }
}

variable "job_page_size" {
  description = "Users read per Firestore page (JOB_PAGE_SIZE)."
  type        = number
  default     = 200

  validation {
    condition     = var.job_page_size >= 1 && var.job_page_size <= 500
    error_message = "job_page_size must be from 1 to 500."
  }
}

variable "job_interval_seconds" {
  description = "How long after a successful run a user is due again (JOB_INTERVAL_SECONDS). Well under Google's 6-month idle expiry of refresh tokens."
  type        = number
  default     = 3600

  validation {
    condition     = var.job_interval_seconds >= 60 && var.job_interval_seconds <= 2592000
    error_message = "job_interval_seconds must be from 60 to 2592000 (30 days)."
  }
}

variable "job_max_instances" {
  description = "Upper bound on run_offline_job instances. Each instance serves one run at a time; 2 lets an at-least-once duplicate delivery overlap a run (the job is idempotent per schedule time)."
  type        = number
  default     = 2

  validation {
    condition     = var.job_max_instances >= 1 && var.job_max_instances <= 10
    error_message = "job_max_instances must be from 1 to 10."
  }
}

variable "job_cpu" {
  description = "vCPUs of a run_offline_job instance."
  type        = string
  default     = "1"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.job_cpu))
    error_message = "job_cpu must be a number such as \"1\" or \"2\"."
  }
}

variable "job_memory" {
  description = "Memory of a run_offline_job instance, e.g. 512Mi."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.job_memory))
    error_message = "job_memory must be a quantity such as 512Mi or 1Gi."
  }
}

#-- Fan-out on Pub/Sub (job_mode = "pubsub") --#

variable "job_mode" {
  description = "How the scheduled job reaches its users (JOB_MODE). \"inline\": run_offline_job processes every due user itself, in one instance (one run handles about budget x users/s, see the README's crossover). \"pubsub\": run_offline_job dispatches the due users to a Pub/Sub topic and run_offline_worker instances process them, as many as worker_max_instances."
  type        = string
  default     = "inline"

  validation {
    condition     = contains(["inline", "pubsub"], var.job_mode)
    error_message = "job_mode must be \"inline\" or \"pubsub\"."
  }
}

variable "job_message_users" {
  description = "Users per work message (JOB_MESSAGE_USERS): a message's users are read, claimed and recorded in one batched write each, so larger messages cost fewer Firestore RPCs, push requests and Pub/Sub minimum-size charges per user."
  type        = number
  default     = 50

  validation {
    condition     = var.job_message_users >= 1 && var.job_message_users <= 500
    error_message = "job_message_users must be from 1 to 500 (one BatchWrite per message)."
  }
}

variable "worker_max_instances" {
  description = "Upper bound on run_offline_worker instances. With worker_concurrency, it caps the calls in flight to Google's token endpoint and APIs: worker_max_instances x worker_concurrency."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_max_instances >= 1 && var.worker_max_instances <= 100
    error_message = "worker_max_instances must be from 1 to 100."
  }
}

variable "worker_concurrency" {
  description = "Users one run_offline_worker instance works on at once, across the messages it serves (its JOB_CONCURRENCY): each holds at most one call to Google."
  type        = number
  default     = 32

  validation {
    condition     = var.worker_concurrency >= 1 && var.worker_concurrency <= 64
    error_message = "worker_concurrency must be from 1 to 64."
  }
}

variable "worker_messages_per_instance" {
  description = "Push deliveries (messages) one run_offline_worker instance serves at once (max_instance_request_concurrency). Their users share the instance's worker_concurrency threads, so more messages than one keep the threads busy while a message ends."
  type        = number
  default     = 4

  validation {
    condition     = var.worker_messages_per_instance >= 1 && var.worker_messages_per_instance <= 32
    error_message = "worker_messages_per_instance must be from 1 to 32."
  }
}

variable "worker_time_budget_seconds" {
  description = "Hard deadline of one delivery (the worker's JOB_TIME_BUDGET_SECONDS): no user of the message starts after it, and no retry wait ends after it. Below worker_ack_deadline_seconds."
  type        = number
  default     = 120

  validation {
    condition     = var.worker_time_budget_seconds >= 10 && var.worker_time_budget_seconds <= 500
    error_message = "worker_time_budget_seconds must be from 10 to 500."
  }
}

variable "worker_ack_deadline_seconds" {
  description = "Acknowledgement deadline of the push subscription: how long Pub/Sub waits for the worker's answer before it redelivers. At least worker_time_budget_seconds + 60 (the users in flight and the result write), at most 600."
  type        = number
  default     = 300

  validation {
    condition     = var.worker_ack_deadline_seconds >= 10 && var.worker_ack_deadline_seconds <= 600
    error_message = "worker_ack_deadline_seconds must be from 10 to 600 (Pub/Sub's limit)."
  }
}

variable "worker_timeout_seconds" {
  description = "Request timeout of run_offline_worker: at least worker_ack_deadline_seconds, so a delivery is never cut off while Pub/Sub still waits for it."
  type        = number
  default     = 360

  validation {
    condition     = var.worker_timeout_seconds >= 60 && var.worker_timeout_seconds <= 3600
    error_message = "worker_timeout_seconds must be from 60 to 3600."
  }
}

variable "worker_max_delivery_attempts" {
  description = "Delivery attempts of a work message before Pub/Sub forwards it to the dead-letter topic (JOB_MAX_DELIVERY_ATTEMPTS; the worker records the users of a failed last attempt as dead-lettered). Generous, because a push answered 429 by a saturated service also counts as an attempt."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_max_delivery_attempts >= 5 && var.worker_max_delivery_attempts <= 100
    error_message = "worker_max_delivery_attempts must be from 5 to 100 (Pub/Sub's dead-letter policy)."
  }
}

variable "worker_retry_backoff_seconds" {
  description = "Minimum and maximum backoff of the push subscription's exponential retry policy, in seconds."
  type        = object({ minimum = number, maximum = number })
  default     = { minimum = 10, maximum = 600 }

  validation {
    condition     = var.worker_retry_backoff_seconds.minimum >= 0 && var.worker_retry_backoff_seconds.minimum <= var.worker_retry_backoff_seconds.maximum && var.worker_retry_backoff_seconds.maximum <= 600
    error_message = "worker_retry_backoff_seconds needs 0 <= minimum <= maximum <= 600."
  }
}

variable "worker_cpu" {
  description = "vCPUs of a run_offline_worker instance."
  type        = string
  default     = "1"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.worker_cpu))
    error_message = "worker_cpu must be a number such as \"1\" or \"2\"."
  }
}

variable "worker_memory" {
  description = "Memory of a run_offline_worker instance, e.g. 512Mi."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.worker_memory))
    error_message = "worker_memory must be a quantity such as 512Mi or 1Gi."
  }
}

variable "dead_letter_retention_days" {
  description = "Days the dead-letter subscription keeps a message nobody acknowledged (for the operator to read)."
  type        = number
  default     = 7

  validation {
    condition     = var.dead_letter_retention_days >= 1 && var.dead_letter_retention_days <= 7
    error_message = "dead_letter_retention_days must be from 1 to 7 (Pub/Sub's retention limit)."
  }
}

#-- Monitoring --#

variable "alert_email" {
  description = "Email address the alert policies notify (a Cloud Monitoring email channel). null: the policies exist and show in the console, but notify nobody."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an email address, or null."
  }
}

variable "job_schedule_period_seconds" {
  description = "The period of job_schedule in seconds, for the alerts that count intervals (no successful run in 3, backlog older than 2). null: read from a job_schedule of the form \"*/N * * * *\"; set it for any other schedule."
  type        = number
  default     = null

  validation {
    condition     = var.job_schedule_period_seconds == null || try(var.job_schedule_period_seconds >= 60 && var.job_schedule_period_seconds <= 28200, false)
    error_message = "job_schedule_period_seconds must be from 60 to 28200 (three periods must fit Cloud Monitoring's 23.5 h absence window)."
  }
}

variable "alert_exchange_5xx_ratio" {
  description = "Alert when more than this share of exchanges answer 5xx over 10 minutes."
  type        = number
  default     = 0.05

  validation {
    condition     = var.alert_exchange_5xx_ratio > 0 && var.alert_exchange_5xx_ratio <= 1
    error_message = "alert_exchange_5xx_ratio must be above 0 and at most 1."
  }
}

variable "alert_needs_reauth_ratio" {
  description = "Alert when more than this share of the users processed in an hour are found needs_reauth (a spike: Google refusing refreshes, a revoked client, an expired Testing-mode consent screen)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.alert_needs_reauth_ratio > 0 && var.alert_needs_reauth_ratio <= 1
    error_message = "alert_needs_reauth_ratio must be above 0 and at most 1."
  }
}

#-- Source archives --#

variable "source_archive_retention_days" {
  description = "Days a replaced function source archive is kept in the source buckets (this deployment's and the Cloud Functions staging bucket it creates) before deletion."
  type        = number
  default     = 30

  validation {
    condition     = var.source_archive_retention_days >= 1
    error_message = "source_archive_retention_days must be at least 1."
  }
}

#-- Token API and lifecycle events --#

variable "app_backend_service_accounts" {
  description = "Service-account emails of the app's backends that may call the token API (Cloud Run run.invoker, checked again by the function). Empty: nobody can."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for email in var.app_backend_service_accounts : can(regex("^[a-z0-9-]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", email))])
    error_message = "app_backend_service_accounts must be service-account emails (NAME@PROJECT.iam.gserviceaccount.com)."
  }
}

variable "token_api_max_instances" {
  description = "Upper bound on token_api instances."
  type        = number
  default     = 10

  validation {
    condition     = var.token_api_max_instances >= 1 && var.token_api_max_instances <= 100 && floor(var.token_api_max_instances) == var.token_api_max_instances
    error_message = "token_api_max_instances must be a whole number from 1 to 100."
  }
}

variable "events_subscribers" {
  description = "Service-account emails that may attach subscriptions to the lifecycle events' topic (roles/pubsub.subscriber on the topic)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for email in var.events_subscribers : can(regex("^[^@\\s]+@[a-z0-9.-]+$", email))])
    error_message = "events_subscribers must be service-account emails."
  }
}

variable "events_retention_days" {
  description = "How long the events topic keeps messages (1 to 31 days), so a new or seeked subscription can read recent events."
  type        = number
  default     = 7

  validation {
    condition     = var.events_retention_days >= 1 && var.events_retention_days <= 31 && floor(var.events_retention_days) == var.events_retention_days
    error_message = "events_retention_days must be a whole number from 1 to 31."
  }
}

variable "event_type_prefix" {
  description = "Reverse-DNS prefix of the events' CloudEvents types, e.g. com.example.offline-access (then com.example.offline-access.user.connected)."
  type        = string
  default     = "dev.offline-access"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*(\\.[a-z0-9][a-z0-9-]*)+$", var.event_type_prefix))
    error_message = "event_type_prefix must be a reverse-DNS name such as com.example.offline-access."
  }
}

variable "app_origins" {
  description = "Origins of your app's own pages (https://app.example.com) that embed static_site/offline-access.js and send the code to the exchange cross-origin: added to ALLOWED_ORIGINS. Register each as an Authorized JavaScript origin of the OAuth client too. Such a page keeps no session (README, Integrate with your app)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for origin in var.app_origins : can(regex("^https://[a-z0-9.-]+(:[0-9]{1,5})?$", origin))])
    error_message = "app_origins must be https:// origins (scheme://host[:port], no path, no trailing slash)."
  }
}
