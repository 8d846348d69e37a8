#-- Fan-out on Pub/Sub (job_mode = "pubsub") --#
#
# Cloud Scheduler -> run_offline_job (the dispatcher: due users, page by page) -> the work topic
# -> a push subscription (OIDC token of the push identity) -> run_offline_worker (internal
# ingress; run.invoker for the push identity alone). A message failing its last delivery attempt
# goes to the dead-letter topic, whose pull subscription keeps it for the operator.
# Every resource here exists with job_mode = "pubsub" only.

resource "google_pubsub_topic" "work" {
  #checkov:skip=CKV_GCP_83:Work messages carry a run id and user ids (Google's opaque subs), never a token or profile field, and live minutes; Google-managed encryption, as for every other resource of this deployment. A customer-managed key would add a KMS key ring and its IAM with nothing secret to protect.
  count = local.fanout ? 1 : 0

  project = var.project_id
  name    = local.work_topic_id
  labels  = local.labels

  # A message nobody delivered within a day is stale: the next dispatch sends its users again.
  message_retention_duration = "86400s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Dead-lettered work messages: a run id and user ids only, as on the work topic; Google-managed encryption, as for every other resource of this deployment.
  count = local.fanout ? 1 : 0

  project = var.project_id
  name    = local.dead_letter_topic_id
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "work_push" {
  count = local.fanout ? 1 : 0

  project = var.project_id
  name    = local.work_subscription_id
  topic   = google_pubsub_topic.work[0].id
  labels  = local.labels

  # Pub/Sub waits this long for the worker's answer: longer than a delivery's hard deadline
  # (worker_time_budget_seconds) plus the users in flight and the result write.
  ack_deadline_seconds       = var.worker_ack_deadline_seconds
  message_retention_duration = "86400s"
  # Never expire the subscription for inactivity (a quiet week must not delete it).
  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.worker[0].service_config[0].uri
    # Cloud Run checks the token's audience against the service URL, and run.invoker.
    oidc_token {
      service_account_email = google_service_account.push[0].email
      audience              = google_cloudfunctions2_function.worker[0].service_config[0].uri
    }
    # No no_wrapper block: the body is the JSON envelope, with deliveryAttempt
    # (offline_access/messaging/push.py).
  }

  retry_policy {
    minimum_backoff = "${var.worker_retry_backoff_seconds.minimum}s"
    maximum_backoff = "${var.worker_retry_backoff_seconds.maximum}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[0].id
    max_delivery_attempts = var.worker_max_delivery_attempts
  }

  lifecycle {
    precondition {
      condition     = var.worker_time_budget_seconds + 60 <= var.worker_ack_deadline_seconds && var.worker_ack_deadline_seconds <= var.worker_timeout_seconds
      error_message = "Need worker_time_budget_seconds + 60 <= worker_ack_deadline_seconds <= worker_timeout_seconds: Pub/Sub must wait for a delivery's hard deadline and the writes after it, and the function must not be cut off while Pub/Sub still waits."
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher_pubsub_agent,
    google_cloud_run_service_iam_member.worker_invoker_push,
  ]
}

# Where an operator reads dead-lettered messages (offline_access/offline/dead_letters.py); its
# backlog is the "dead-letter topic not empty" alert.
resource "google_pubsub_subscription" "dead_letter" {
  count = local.fanout ? 1 : 0

  project = var.project_id
  name    = local.dead_letter_subscription_id
  topic   = google_pubsub_topic.dead_letter[0].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "${var.dead_letter_retention_days * 86400}s"
  expiration_policy {
    ttl = ""
  }
}

#-- run_offline_worker: internal, pushed to by Pub/Sub --#

resource "google_cloudfunctions2_function" "worker" {
  count = local.fanout ? 1 : 0

  project     = var.project_id
  location    = var.region
  name        = local.worker_function_name
  description = "Processes the users of each work message the push subscription delivers (job_mode = pubsub)."

  build_config {
    runtime           = "python312"
    entry_point       = "run_offline_worker"
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
    # The bound on calls in flight to Google: worker_max_instances x worker_concurrency.
    max_instance_count               = var.worker_max_instances
    max_instance_request_concurrency = var.worker_messages_per_instance
    available_cpu                    = var.worker_cpu
    available_memory                 = var.worker_memory
    timeout_seconds                  = var.worker_timeout_seconds
    # Same-project Pub/Sub push counts as internal for Cloud Run ingress (README, "Fan-out");
    # the gate is IAM: run.invoker for the push identity alone.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.worker[0].email

    environment_variables = merge(local.opening_environment, {
      JOB_TIME_BUDGET_SECONDS = tostring(var.worker_time_budget_seconds)
      JOB_CONCURRENCY         = tostring(var.worker_concurrency)
      # A claim must outlive the longest delivery that can still be working on a user.
      JOB_CLAIM_TTL_SECONDS = tostring(var.worker_timeout_seconds + 60)
      # One gunicorn thread per delivery served at once.
      THREADS = tostring(var.worker_messages_per_instance)
    })
  }

  labels = local.labels

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_gcf_sources_reader,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.worker_client_secret,
    google_secret_manager_secret_iam_member.worker_sealing_key,
    google_secret_manager_secret_iam_member.worker_sealing_public_keys,
    google_secret_manager_secret_iam_member.worker_sealing_private_keys,
    google_secret_manager_secret_iam_member.worker_log_key,
    google_project_iam_member.worker_datastore_user,
  ]
}

#-- Identities and their grants --#

resource "google_service_account" "worker" {
  count = local.fanout ? 1 : 0

  project      = var.project_id
  account_id   = local.worker_sa_id
  display_name = "run_offline_worker function (${local.prefix})"
  description  = "Runtime identity of the fan-out worker: opens tokens, calls Google, writes results."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "push" {
  count = local.fanout ? 1 : 0

  project      = var.project_id
  account_id   = local.push_sa_id
  display_name = "Pub/Sub push caller (${local.prefix})"
  description  = "Identity in the OIDC token the work subscription pushes with; it can invoke run_offline_worker and nothing else."

  depends_on = [google_project_service.enabled]
}

# The worker refreshes and opens tokens, as the job: the client secret, both halves
# of the sealing keys, the first releases' AES key, and the log key.
# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "worker_client_secret" {
  count = local.fanout ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.oauth_client_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker[0].email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "worker_sealing_key" {
  count = local.fanout ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker[0].email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "worker_sealing_public_keys" {
  count = local.fanout ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_public_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker[0].email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "worker_sealing_private_keys" {
  count = local.fanout ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.token_sealing_private_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker[0].email}"
}

# https://cloud.google.com/secret-manager/docs/access-control#secretmanager.secretAccessor
resource "google_secret_manager_secret_iam_member" "worker_log_key" {
  count = local.fanout ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.log_user_ref_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker[0].email}"
}

# Firestore IAM has no per-collection scope: the one project-level runtime role, as the job's.
# https://cloud.google.com/firestore/docs/security/iam#roles
resource "google_project_iam_member" "worker_datastore_user" {
  count = local.fanout ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.worker[0].email}"
}

# The dispatcher (run_offline_job) publishes to the work topic, and to nothing else.
# https://cloud.google.com/pubsub/docs/access-control#roles
resource "google_pubsub_topic_iam_member" "work_publisher_job" {
  count = local.fanout ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.work[0].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.job.email}"
}

# Cloud Run Invoker on the worker's service, for the push identity only.
# https://cloud.google.com/run/docs/reference/iam/roles
resource "google_cloud_run_service_iam_member" "worker_invoker_push" {
  count = local.fanout ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.worker[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push[0].email}"
}

# Pub/Sub's service agent mints the push identity's OIDC tokens (needed in projects created
# before April 2021; harmless after), on that one account.
# https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
resource "google_service_account_iam_member" "push_token_creator_pubsub_agent" {
  count = local.fanout ? 1 : 0

  service_account_id = google_service_account.push[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Dead-lettering: Pub/Sub's service agent publishes to the dead-letter topic and acknowledges
# the forwarded message on the work subscription.
# https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions
resource "google_pubsub_topic_iam_member" "dead_letter_publisher_pubsub_agent" {
  count = local.fanout ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[0].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

# https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions
resource "google_pubsub_subscription_iam_member" "work_subscriber_pubsub_agent" {
  count = local.fanout ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.work_push[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
