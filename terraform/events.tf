#-- Lifecycle events: a Pub/Sub topic of CloudEvents --#

locals {
  events_topic_name = "${local.prefix}-events"
  # The functions that publish: they change users (sign-in, results, needs_reauth, disconnect).
  events_environment = {
    EVENTS_TOPIC = google_pubsub_topic.events.id
  }
  # The worker (job_mode = "pubsub") and the Cross-Account Protection receiver publish
  # too, when they exist.
  events_publishers = merge({
    exchange   = google_service_account.exchange.email
    job        = google_service_account.job.email
    disconnect = google_service_account.disconnect.email
    token_api  = google_service_account.token_api.email
    }, {
    for sa in google_service_account.worker : "worker" => sa.email
    }, {
    for sa in google_service_account.risc : "risc" => sa.email
  })
}

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption, as for every other resource of this deployment: the events carry a user's sub, email and status changes, which the app's own backend already holds, and never a token; a customer-managed key would add a KMS key ring and its IAM for no added protection here.
  project = var.project_id
  name    = local.events_topic_name

  # Kept this long on the topic itself, so a subscription created later (or seeked back) can
  # still read recent events.
  message_retention_duration = "${var.events_retention_days * 86400}s"

  labels = local.labels

  depends_on = [google_project_service.enabled]
}

# Pub/Sub Publisher on the events topic, for the functions that publish and no other.
# https://cloud.google.com/pubsub/docs/access-control#roles
resource "google_pubsub_topic_iam_member" "events_publishers" {
  for_each = local.events_publishers

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${each.value}"
}

# Pub/Sub Subscriber on the topic for the app's service accounts: it lets them attach their own
# subscriptions (pull or push, in their own project) to this topic, and nothing else here.
# https://cloud.google.com/pubsub/docs/access-control#roles
resource "google_pubsub_topic_iam_member" "events_subscribers" {
  for_each = toset(var.events_subscribers)

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.subscriber"
  member  = "serviceAccount:${each.value}"
}
