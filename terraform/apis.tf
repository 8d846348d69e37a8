#-- APIs --#

locals {
  services = toset([
    "artifactregistry.googleapis.com",     # images built from the function source
    "cloudbuild.googleapis.com",           # builds the functions
    "cloudfunctions.googleapis.com",       # Cloud Functions gen2
    "cloudresourcemanager.googleapis.com", # project IAM bindings
    "cloudscheduler.googleapis.com",       # the scheduled job's trigger
    "firebase.googleapis.com",             # adds Firebase to the project (Hosting needs it)
    "firebasehosting.googleapis.com",      # serves the sign-in page
    "firebaserules.googleapis.com",        # Firestore security rules
    "firestore.googleapis.com",            # user documents
    "iam.googleapis.com",                  # service accounts
    "logging.googleapis.com",              # build and function logs, log-based metrics
    "monitoring.googleapis.com",           # alert policies, notification channel, dashboard
    "pubsub.googleapis.com",               # lifecycle events; the job's fan-out (job_mode = "pubsub")
    "run.googleapis.com",                  # gen2 functions run on Cloud Run
    "secretmanager.googleapis.com",        # client secret and sealing key
    "serviceusage.googleapis.com",         # enabling the others
    "storage.googleapis.com",              # source archives
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value

  # Other workloads in the project may use these APIs: destroy leaves them on.
  disable_on_destroy         = false
  disable_dependent_services = false
}
