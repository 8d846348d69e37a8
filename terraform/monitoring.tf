#-- Log-based metrics --#
#
# Every function writes one JSON line per event (docs/design.md, "Logs"); Cloud Logging keeps
# them as jsonPayload, and these metrics count and measure them. The README's "Operating" section
# shows the same lines with gcloud logging read.

locals {
  function_services = compact([
    local.exchange_function_name,
    local.job_function_name,
    local.fanout ? local.worker_function_name : "",
  ])
  logs_of_functions = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(${join(" OR ", [for s in local.function_services : "\"${s}\""])})"
  logs_of_exchange  = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.exchange_function_name}\""
  # A run's own line: inline, the dispatch of a pubsub run, or one delivery of a message.
  run_events = "jsonPayload.event=(\"offline_job\" OR \"offline_job_dispatch\" OR \"offline_job_message\")"

  metric_prefix = "logging.googleapis.com/user"
  metric_names = {
    exchange_outcomes  = "${local.prefix}/exchange_outcomes"
    job_user_outcomes  = "${local.prefix}/job_user_outcomes"
    job_runs           = "${local.prefix}/job_runs"
    job_run_duration   = "${local.prefix}/job_run_duration"
    job_breaker_opened = "${local.prefix}/job_breaker_opened"
    job_backlog_age    = "${local.prefix}/job_backlog_age"
    misconfigured      = "${local.prefix}/misconfigured_errors"
  }
}

# One point per exchange: outcome ("signed in", code_rejected, service_unavailable...) and status.
resource "google_logging_metric" "exchange_outcomes" {
  project     = var.project_id
  name        = local.metric_names.exchange_outcomes
  description = "Code exchanges by outcome and HTTP status."
  filter      = "${local.logs_of_exchange} AND jsonPayload.event=\"exchange_code\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
    labels {
      key        = "status"
      value_type = "STRING"
    }
  }
  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
    status  = "EXTRACT(jsonPayload.status)"
  }

  depends_on = [google_project_service.enabled]
}

# One point per user per run: succeeded, partial, needs_reauth (reason = why), deferred
# (reason = the error), skipped, dead_lettered (reason = the last attempt's error).
resource "google_logging_metric" "job_user_outcomes" {
  project     = var.project_id
  name        = local.metric_names.job_user_outcomes
  description = "Users processed by the offline job, by outcome and reason."
  filter      = "${local.logs_of_functions} AND jsonPayload.event=\"offline_job_user\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
    labels {
      key        = "reason"
      value_type = "STRING"
    }
  }
  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
    reason  = "EXTRACT(jsonPayload.detail)"
  }

  depends_on = [google_project_service.enabled]
}

# One point per run line: inline runs and dispatches (the scheduled calls) and deliveries.
resource "google_logging_metric" "job_runs" {
  project     = var.project_id
  name        = local.metric_names.job_runs
  description = "Runs of the offline job (event offline_job or offline_job_dispatch) and deliveries of work messages (offline_job_message), by outcome."
  filter      = "${local.logs_of_functions} AND ${local.run_events} AND jsonPayload.run_id:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "event"
      value_type = "STRING"
    }
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
  }
  label_extractors = {
    event   = "EXTRACT(jsonPayload.event)"
    outcome = "EXTRACT(jsonPayload.outcome)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "job_run_duration" {
  project         = var.project_id
  name            = local.metric_names.job_run_duration
  description     = "Duration of offline job runs, dispatches and message deliveries."
  filter          = "${local.logs_of_functions} AND ${local.run_events} AND jsonPayload.duration_ms>=0"
  value_extractor = "EXTRACT(jsonPayload.duration_ms)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
    labels {
      key        = "event"
      value_type = "STRING"
    }
  }
  label_extractors = {
    event = "EXTRACT(jsonPayload.event)"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.5
      scale              = 10
    }
  }

  depends_on = [google_project_service.enabled]
}

# The circuit breaker: a run or a delivery stopped starting users after outages in a row.
resource "google_logging_metric" "job_breaker_opened" {
  project     = var.project_id
  name        = local.metric_names.job_breaker_opened
  description = "Runs and deliveries whose circuit breaker opened (users in a row met an outage)."
  filter      = "${local.logs_of_functions} AND ${local.run_events} AND jsonPayload.stopped=\"upstream_unavailable\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

# The backlog gauge: each scheduled call logs how long the oldest due user had been due.
resource "google_logging_metric" "job_backlog_age" {
  project         = var.project_id
  name            = local.metric_names.job_backlog_age
  description     = "Age of the oldest due next_run_at when a scheduled run starts (seconds): how far the job is behind."
  filter          = "${local.logs_of_functions} AND jsonPayload.event=(\"offline_job\" OR \"offline_job_dispatch\") AND jsonPayload.backlog_age_seconds>=0"
  value_extractor = "EXTRACT(jsonPayload.backlog_age_seconds)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.5
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

# Any ERROR that says the deployment is wrong: the exchange's server_misconfigured, a user of the
# job deferred as misconfigured, a run or delivery that could not start for it.
resource "google_logging_metric" "misconfigured" {
  project     = var.project_id
  name        = local.metric_names.misconfigured
  description = "ERROR lines of a misconfiguration (an operator must act: client secret, redirect URI, secret names, task names)."
  filter      = "${local.logs_of_functions} AND severity=ERROR AND (jsonPayload.error=\"server_misconfigured\" OR jsonPayload.detail=\"misconfigured\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

#-- Notification channel --#

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == null ? 0 : 1

  project      = var.project_id
  display_name = "${local.prefix} operators"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.enabled]
}

#-- Alert policies --#

locals {
  notification_channels = google_monitoring_notification_channel.email[*].id
  alert_period          = local.schedule_period_seconds
  metric                = { for key, name in local.metric_names : key => "metric.type=\"${local.metric_prefix}/${name}\"" }
}

resource "google_monitoring_alert_policy" "exchange_5xx" {
  project      = var.project_id
  display_name = "${local.prefix}: exchange 5xx rate"
  combiner     = "OR"
  conditions {
    display_name = "More than ${var.alert_exchange_5xx_ratio * 100}% of exchanges answered 5xx over 10 minutes"
    condition_threshold {
      filter             = "${local.metric.exchange_outcomes} AND resource.type=\"cloud_run_revision\" AND metric.label.status=monitoring.regex.full_match(\"5[0-9][0-9]\")"
      denominator_filter = "${local.metric.exchange_outcomes} AND resource.type=\"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_exchange_5xx_ratio
      duration           = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = local.notification_channels
  documentation {
    mime_type = "text/markdown"
    content   = "Sign-ins are failing on our side or Google's. The log line's error says which: service_unavailable names the dependency (Secret Manager, Firestore, Google's token endpoint); server_misconfigured says what to fix. README, Operating."
  }
  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [google_logging_metric.exchange_outcomes]
}

resource "google_monitoring_alert_policy" "misconfigured" {
  project      = var.project_id
  display_name = "${local.prefix}: misconfiguration"
  combiner     = "OR"
  conditions {
    display_name = "Any misconfigured ERROR"
    condition_threshold {
      filter          = "${local.metric.misconfigured} AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = local.notification_channels
  documentation {
    mime_type = "text/markdown"
    content   = "The deployment is wrong and an operator must act. The ERROR line's fix field says what: gcloud logging read 'severity=ERROR AND jsonPayload.fix:*' --freshness=1h."
  }
  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [google_logging_metric.misconfigured]
}

resource "google_monitoring_alert_policy" "breaker_opened" {
  project      = var.project_id
  display_name = "${local.prefix}: circuit breaker opened"
  combiner     = "OR"
  conditions {
    display_name = "A run or delivery stopped after users in a row met an outage"
    condition_threshold {
      filter          = "${local.metric.job_breaker_opened} AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = local.notification_channels
  documentation {
    mime_type = "text/markdown"
    content   = "Google, Firestore or Secret Manager kept failing: the job stopped starting users and left them due for the next run. No grant was touched. The users' deferred lines say which dependency."
  }
  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [google_logging_metric.job_breaker_opened]
}

resource "google_monitoring_alert_policy" "no_successful_run" {
  project      = var.project_id
  display_name = "${local.prefix}: no successful run in 3 intervals"
  combiner     = "OR"
  conditions {
    display_name = "No completed offline job run or dispatch for ${3 * local.alert_period} s"
    condition_absent {
      filter   = "${local.metric.job_runs} AND resource.type=\"cloud_run_revision\" AND metric.label.outcome=\"completed\" AND metric.label.event=monitoring.regex.full_match(\"offline_job|offline_job_dispatch\")"
      duration = "${3 * local.alert_period}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }
  notification_channels = local.notification_channels
  documentation {
    mime_type = "text/markdown"
    content   = "A dead man's switch: Cloud Scheduler has not had a completed run for three schedule periods. Check that the Scheduler job is not paused, and the job function's logs (a 503 names the dependency, a 500 what to fix)."
  }
  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_logging_metric.job_runs]

  lifecycle {
    precondition {
      condition     = local.alert_period >= 60
      error_message = "Set job_schedule_period_seconds: job_schedule is not of the form \"*/N * * * *\", so the alerts cannot tell its period."
    }
  }
}

resource "google_monitoring_alert_policy" "backlog_age" {
  project      = var.project_id
  display_name = "${local.prefix}: backlog older than 2 intervals"
  combiner     = "OR"
  conditions {
    display_name = "The oldest due user has waited more than ${2 * local.alert_period} s"
    condition_threshold {
      filter          = "${local.metric.job_backlog_age} AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 2 * local.alert_period
      duration        = "0s"
      aggregations {
        alignment_period     = "${max(local.alert_period, 60)}s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }
  notification_channels = local.notification_channels
  documentation {
    mime_type = "text/markdown"
    content   = "The job is falling behind: users wait longer than two schedule periods. Inline: a run cannot reach every due user within its budget, switch to job_mode = \"pubsub\" (README, crossover). Pub/Sub: raise worker_max_instances, or look for deferrals and breaker openings."
  }
  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_logging_metric.job_backlog_age]
}

resource "google_monitoring_alert_policy" "needs_reauth_spike" {
  project      = var.project_id
  display_name = "${local.prefix}: needs_reauth spike"
  combiner     = "OR"
  conditions {
    display_name = "More than ${var.alert_needs_reauth_ratio * 100}% of the users processed in an hour need to sign in again"
    condition_threshold {
      filter             = "${local.metric.job_user_outcomes} AND resource.type=\"cloud_run_revision\" AND metric.label.outcome=\"needs_reauth\""
      denominator_filter = "${local.metric.job_user_outcomes} AND resource.type=\"cloud_run_revision\" AND metric.label.outcome!=\"skipped\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_needs_reauth_ratio
      duration           = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  notification_channels = local.notification_channels
  documentation {
    mime_type = "text/markdown"
    content   = "Many grants died at once. The reason label says why: revoked (the OAuth client was reset, or users removed access), testing_mode_expiry (the consent screen is in Testing), unused_6_months, reauth_required (a Workspace reauthentication policy), unreadable_token (a sealing key is missing)."
  }
  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_logging_metric.job_user_outcomes]
}

resource "google_monitoring_alert_policy" "dead_letters" {
  count = local.fanout ? 1 : 0

  project      = var.project_id
  display_name = "${local.prefix}: dead-letter topic not empty"
  combiner     = "OR"
  conditions {
    display_name = "Messages wait in ${local.dead_letter_subscription_id}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${local.dead_letter_subscription_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }
  notification_channels = local.notification_channels
  documentation {
    mime_type = "text/markdown"
    content   = "A work message failed its last delivery attempt. Its users stay due (the next dispatch sends them again) and carry job.dead_letter. The operator's dead-letter commands list them; acknowledge the messages once understood."
  }
  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_pubsub_subscription.dead_letter]
}

#-- Dashboard --#

locals {
  # One xyChart tile per series; the dashboard's JSON is built here (dashboard_json).
  dashboard_charts = concat([
    { title = "Exchanges by outcome", filter = local.metric.exchange_outcomes, aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.outcome"], plot = "STACKED_BAR" },
    { title = "Users by outcome", filter = local.metric.job_user_outcomes, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.outcome"], plot = "STACKED_BAR" },
    { title = "needs_reauth by reason", filter = "${local.metric.job_user_outcomes} AND metric.label.outcome=\"needs_reauth\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.reason"], plot = "STACKED_BAR" },
    { title = "Deferred and dead-lettered users by reason", filter = "${local.metric.job_user_outcomes} AND metric.label.outcome=monitoring.regex.full_match(\"deferred|dead_lettered\")", aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.outcome", "metric.label.reason"], plot = "STACKED_BAR" },
    { title = "Run duration p50 (ms)", filter = local.metric.job_run_duration, aligner = "ALIGN_PERCENTILE_50", reducer = "REDUCE_MAX", group = ["metric.label.event"], plot = "LINE" },
    { title = "Run duration p99 (ms)", filter = local.metric.job_run_duration, aligner = "ALIGN_PERCENTILE_99", reducer = "REDUCE_MAX", group = ["metric.label.event"], plot = "LINE" },
    { title = "Backlog: oldest due user's age (s)", filter = local.metric.job_backlog_age, aligner = "ALIGN_PERCENTILE_99", reducer = "REDUCE_MAX", group = [], plot = "LINE" },
    { title = "Runs by outcome", filter = local.metric.job_runs, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = ["metric.label.event", "metric.label.outcome"], plot = "STACKED_BAR" },
    { title = "Circuit breaker openings", filter = local.metric.job_breaker_opened, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = [], plot = "STACKED_BAR" },
    { title = "Misconfiguration errors", filter = local.metric.misconfigured, aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group = [], plot = "STACKED_BAR" },
    ], local.fanout ? [
    { title = "Work messages waiting", filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id=\"${local.work_subscription_id}\"", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = [], plot = "LINE" },
    { title = "Oldest unacknowledged work message (s)", filter = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.label.subscription_id=\"${local.work_subscription_id}\"", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = [], plot = "LINE" },
    { title = "Dead-lettered messages waiting", filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id=\"${local.dead_letter_subscription_id}\"", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = [], plot = "LINE" },
    { title = "Worker instances", filter = "metric.type=\"run.googleapis.com/container/instance_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=\"${local.worker_function_name}\"", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = ["metric.label.state"], plot = "STACKED_AREA" },
  ] : [])

  dashboard = {
    displayName = "${local.prefix}: sign-in and offline job"
    mosaicLayout = {
      columns = 48
      tiles = [for index, chart in local.dashboard_charts : {
        xPos   = (index % 2) * 24
        yPos   = floor(index / 2) * 16
        width  = 24
        height = 16
        widget = {
          title = chart.title
          xyChart = {
            dataSets = [{
              plotType           = chart.plot
              targetAxis         = "Y1"
              minAlignmentPeriod = "60s"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter = chart.filter
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = chart.aligner
                    crossSeriesReducer = chart.reducer
                    groupByFields      = chart.group
                  }
                }
              }
            }]
            yAxis = { scale = "LINEAR" }
          }
        }
      }]
    }
  }
}

resource "google_monitoring_dashboard" "operations" {
  project        = var.project_id
  dashboard_json = jsonencode(local.dashboard)

  depends_on = [
    google_logging_metric.exchange_outcomes,
    google_logging_metric.job_user_outcomes,
    google_logging_metric.job_runs,
    google_logging_metric.job_run_duration,
    google_logging_metric.job_breaker_opened,
    google_logging_metric.job_backlog_age,
    google_logging_metric.misconfigured,
  ]
}
