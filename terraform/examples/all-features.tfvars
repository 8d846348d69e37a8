# Every optional feature switched on, in a region other than the default: the offline
# plan of `make test` plans this file as well as terraform.tfvars.example.
# (A valid configuration, not a recommendation: copy what you need into terraform.tfvars.)

project_id      = "my-project-id"
oauth_client_id = "123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com"

region             = "europe-west1"
firestore_location = "eur3"
name_prefix        = "signin-eu"
labels             = { team = "identity", env = "prod" }

hosting_site_id = "my-project-id-login"
custom_domain   = "signin.example.com"

oauth_client_secret_version = "2"
token_sealing_key_version   = "3"
oauth_app_testing_mode      = true
allowed_hosted_domains      = ["example.com", "example.org"]
oauth_scopes                = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]

create_firebase_project   = true
create_firestore_database = true
create_gcf_sources_bucket = true
manage_firestore_rules    = true
firestore_deletion_policy = "DELETE"

job_schedule                 = "*/5 * * * *"
job_time_zone                = "Europe/Brussels"
job_paused                   = true
job_timeout_seconds          = 900
job_attempt_deadline_seconds = 600
job_time_budget_seconds      = 500
job_max_instances            = 3
job_cpu                      = "2"
job_memory                   = "1Gi"
offline_tasks                = ["drive_appdata", "userinfo"]

# Fan-out on Pub/Sub, with its bounds, and alerts by email.
job_mode                     = "pubsub"
job_message_users            = 50
worker_max_instances         = 20
worker_concurrency           = 32
worker_messages_per_instance = 4
worker_time_budget_seconds   = 120
worker_ack_deadline_seconds  = 300
worker_timeout_seconds       = 360
worker_max_delivery_attempts = 10
alert_email                  = "oncall@example.com"
job_schedule_period_seconds  = 300

# Cross-Account Protection.
risc_enabled                 = true
refresh_token_id_key_version = "1"
risc_admins                  = ["group:identity-admins@example.com", "user:ops@example.com"]
risc_client_ids              = ["123456789012-ios0123456789abcdefghijklmnopqrst.apps.googleusercontent.com"]
risc_max_instances           = 5

# The app's backend: the token API and the lifecycle events.
app_backend_service_accounts = ["app-backend@my-project-id.iam.gserviceaccount.com"]
token_api_max_instances      = 5
events_subscribers           = ["app-events@my-project-id.iam.gserviceaccount.com"]
events_retention_days        = 3
event_type_prefix            = "com.example.signin"
app_origins                  = ["https://app.example.com"]
