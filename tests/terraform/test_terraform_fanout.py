"""Invariants of the fan-out (fanout.tf) and of the operators' view (monitoring.tf).

The worker is internal and invoked by the push identity alone; the push subscription
authenticates, waits longer than a delivery's hard deadline, retries exponentially and
dead-letters, with the grants Pub/Sub needs for that; each concurrency bound is a variable; the
log-based metrics read fields the code writes, and every alert the operators were promised
exists, notifying the channel of `alert_email`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.terraform.test_terraform_invariants import PUBLIC_MEMBERS, RUN_INVOKER, _iam_on, default_of, sa_of

FANOUT_SWITCH = 'local.fanout ? 1 : 0'
REPO = Path(__file__).resolve().parents[2]


def fanout_resources(tf):
    return [(rtype, name, body) for rtype, name, body, filename in tf.all_resources()
            if filename == "fanout.tf"]


def test_every_fanout_resource_exists_in_pubsub_mode_only(tf):
    resources = fanout_resources(tf)
    assert len(resources) == 18
    for rtype, name, body in resources:
        assert tf.ref(body.get("count")) == FANOUT_SWITCH, f"{rtype}.{name} is not behind job_mode"
    assert tf.locals["fanout"] == '${var.job_mode == "pubsub"}'
    assert default_of(tf, "job_mode") == "inline"
    validation = tf.block(tf.variables["job_mode"]["validation"])["condition"]
    assert 'contains(["inline", "pubsub"], var.job_mode)' in validation


def test_worker_is_internal_and_invoked_by_the_push_identity_only(tf):
    worker = tf.resources("google_cloudfunctions2_function")["worker"]
    service = tf.block(worker["service_config"])
    assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert service["min_instance_count"] == 0
    bindings = _iam_on(tf, "worker")
    assert [(b["role"], sa_of(tf, b["member"])) for _, _, b in bindings] == [(RUN_INVOKER, "push")]
    for rtype, name, body in fanout_resources(tf):  # no fan-out grant is public
        if re.search(r"_iam_(member|binding|policy)$", rtype):
            assert not PUBLIC_MEMBERS & ({str(body.get("member"))} | set(body.get("members", []))), name
    # The push identity invokes the worker and holds nothing else.
    push_grants = [(rtype, name) for rtype, name, body, _ in tf.all_resources()
                   if "google_service_account.push[0].email" in str(body.get("member", ""))]
    assert push_grants == [("google_cloud_run_service_iam_member", "worker_invoker_push")]


def test_push_subscription_authenticates_to_the_worker_with_the_push_identity(tf):
    subscription = tf.resources("google_pubsub_subscription")["work_push"]
    push = tf.block(subscription["push_config"])
    uri = "google_cloudfunctions2_function.worker[0].service_config[0].uri"
    assert tf.ref(push["push_endpoint"]) == uri
    oidc = tf.block(push["oidc_token"])
    assert tf.ref(oidc["audience"]) == uri
    assert tf.ref(oidc["service_account_email"]) == "google_service_account.push[0].email"
    assert "no_wrapper" not in push  # the worker reads the envelope, with deliveryAttempt
    assert tf.ref(subscription["topic"]) == "google_pubsub_topic.work[0].id"


def test_push_subscription_retries_exponentially_and_dead_letters(tf):
    subscription = tf.resources("google_pubsub_subscription")["work_push"]
    retry = tf.block(subscription["retry_policy"])
    assert retry["minimum_backoff"] == "${var.worker_retry_backoff_seconds.minimum}s"
    assert retry["maximum_backoff"] == "${var.worker_retry_backoff_seconds.maximum}s"
    backoff = default_of(tf, "worker_retry_backoff_seconds")
    assert 0 < backoff["minimum"] < backoff["maximum"] <= 600
    policy = tf.block(subscription["dead_letter_policy"])
    assert tf.ref(policy["dead_letter_topic"]) == "google_pubsub_topic.dead_letter[0].id"
    assert tf.ref(policy["max_delivery_attempts"]) == "var.worker_max_delivery_attempts"
    assert 5 <= default_of(tf, "worker_max_delivery_attempts") <= 100
    # The worker knows which attempt is the last: the same number in its environment.
    env = tf.locals["function_environment"]
    assert tf.ref(env["JOB_MAX_DELIVERY_ATTEMPTS"]) == "tostring(var.worker_max_delivery_attempts)"
    # Someone reads the dead letters: a pull subscription that keeps them.
    dead = tf.resources("google_pubsub_subscription")["dead_letter"]
    assert tf.ref(dead["topic"]) == "google_pubsub_topic.dead_letter[0].id" and "push_config" not in dead
    assert tf.block(dead["expiration_policy"])["ttl"] == ""


def test_pubsubs_service_agent_may_forward_to_the_dead_letter_topic(tf):
    assert tf.locals["pubsub_service_agent"] == (
        "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com")
    publisher = tf.resources("google_pubsub_topic_iam_member")["dead_letter_publisher_pubsub_agent"]
    assert (tf.ref(publisher["topic"]), publisher["role"], tf.ref(publisher["member"])) == (
        "google_pubsub_topic.dead_letter[0].name", "roles/pubsub.publisher", "local.pubsub_service_agent")
    subscriber = tf.resources("google_pubsub_subscription_iam_member")["work_subscriber_pubsub_agent"]
    assert (tf.ref(subscriber["subscription"]), subscriber["role"]) == (
        "google_pubsub_subscription.work_push[0].name", "roles/pubsub.subscriber")


def test_the_dispatcher_publishes_to_the_work_topic_only(tf):
    grants = tf.resources("google_pubsub_topic_iam_member")
    job = [(tf.ref(b["topic"]), b["role"]) for b in grants.values()
           if "google_service_account.job.email" in b["member"]]
    assert job == [("google_pubsub_topic.work[0].name", "roles/pubsub.publisher")]
    env = tf.locals["function_environment"]
    assert tf.ref(env["JOB_MODE"]) == "var.job_mode"
    assert tf.ref(env["JOB_WORK_TOPIC"]) == 'local.fanout ? local.work_topic_name : ""'


def test_ack_deadline_covers_the_hard_deadline_and_the_timeout_covers_the_ack_deadline(tf):
    budget = default_of(tf, "worker_time_budget_seconds")
    ack = default_of(tf, "worker_ack_deadline_seconds")
    timeout = default_of(tf, "worker_timeout_seconds")
    assert budget + 60 <= ack <= timeout and ack <= 600
    subscription = tf.resources("google_pubsub_subscription")["work_push"]
    assert tf.ref(subscription["ack_deadline_seconds"]) == "var.worker_ack_deadline_seconds"
    condition = tf.block(tf.block(subscription["lifecycle"])["precondition"])["condition"]
    assert "var.worker_time_budget_seconds + 60 <= var.worker_ack_deadline_seconds" in condition
    assert "var.worker_ack_deadline_seconds <= var.worker_timeout_seconds" in condition
    service = tf.block(tf.resources("google_cloudfunctions2_function")["worker"]["service_config"])
    assert tf.ref(service["timeout_seconds"]) == "var.worker_timeout_seconds"
    env = service["environment_variables"]
    assert "JOB_TIME_BUDGET_SECONDS = tostring(var.worker_time_budget_seconds)" in re.sub(r"\s+", " ", env) \
        or "tostring(var.worker_time_budget_seconds)" in env
    # A claim outlives the longest delivery that can hold it.
    assert "var.worker_timeout_seconds + 60" in env


def test_concurrency_bounds_are_documented_variables(tf):
    service = tf.block(tf.resources("google_cloudfunctions2_function")["worker"]["service_config"])
    assert tf.ref(service["max_instance_count"]) == "var.worker_max_instances"
    assert tf.ref(service["max_instance_request_concurrency"]) == "var.worker_messages_per_instance"
    assert "tostring(var.worker_concurrency)" in service["environment_variables"]
    for name in ("worker_max_instances", "worker_concurrency", "worker_messages_per_instance",
                 "job_message_users"):
        assert tf.variables[name].get("validation"), name
    assert "worker_max_instances x worker_concurrency" in tf.variables["worker_max_instances"]["description"]
    assert "var.worker_max_instances * var.worker_concurrency" in tf.locals["max_google_calls_in_flight"]


#-- Monitoring --#

ALERTS = {"exchange_5xx", "misconfigured", "breaker_opened", "no_successful_run", "backlog_age",
          "dead_letters", "needs_reauth_spike"}


def test_every_promised_alert_exists_and_notifies_the_alert_email_channel(tf):
    policies = tf.resources("google_monitoring_alert_policy")
    assert set(policies) == ALERTS
    channel = tf.resources("google_monitoring_notification_channel")["email"]
    assert channel["type"] == "email"
    assert tf.ref(channel["labels"]["email_address"]) == "var.alert_email"
    assert tf.ref(channel["count"]) == "var.alert_email == null ? 0 : 1"
    assert tf.locals["notification_channels"] == "${google_monitoring_notification_channel.email[*].id}"
    for name, body in policies.items():
        assert tf.ref(body["notification_channels"]) == "local.notification_channels", name
        assert tf.block(body["documentation"])["content"], f"{name} tells the operator nothing"


def test_alert_conditions(tf):
    policies = tf.resources("google_monitoring_alert_policy")

    def condition(name, kind="condition_threshold"):
        return tf.block(tf.block(policies[name]["conditions"])[kind])

    dead_man = condition("no_successful_run", "condition_absent")
    assert dead_man["duration"] == "${3 * local.alert_period}s"
    assert 'metric.label.outcome=\\"completed\\"' in dead_man["filter"] or 'outcome="completed"' in dead_man["filter"]
    backlog = condition("backlog_age")
    assert tf.ref(backlog["threshold_value"]) == "2 * local.alert_period"
    assert "job_backlog_age" in backlog["filter"]
    assert "status=monitoring.regex.full_match" in condition("exchange_5xx")["filter"]
    assert condition("exchange_5xx")["denominator_filter"]
    assert "needs_reauth" in condition("needs_reauth_spike")["filter"]
    assert "num_undelivered_messages" in condition("dead_letters")["filter"]
    assert tf.ref(policies["dead_letters"]["count"]) == "local.fanout ? 1 : 0"
    for name in ("misconfigured", "breaker_opened", "dead_letters"):
        assert condition(name)["threshold_value"] == 0 and condition(name)["comparison"] == "COMPARISON_GT"
    assert tf.locals["schedule_every_minutes"].count("regex(") == 1


def _logged_strings() -> str:
    return "\n".join(p.read_text() for p in (REPO / "functions" / "offline_access").rglob("*.py"))


def test_log_metrics_read_events_and_fields_the_functions_write(tf):
    code = _logged_strings()
    metrics = tf.resources("google_logging_metric")
    assert len(metrics) == 7
    text = json.dumps(metrics) + json.dumps(tf.locals["run_events"])
    for event in set(re.findall(r'event=\\?"([a-z_]+)\\?"', text)) | set(
            re.findall(r'\\"(offline_job[a-z_]*|exchange_code)\\"', text)):
        assert f'"{event}"' in code, f"no function logs the event {event}"
    for field in set(re.findall(r"jsonPayload\.([a-z_]+)", text)):
        assert re.search(rf"\b{field}\b", code), f"no function logs the field {field}"
    assert metrics["job_backlog_age"]["value_extractor"] == "EXTRACT(jsonPayload.backlog_age_seconds)"
    assert metrics["job_run_duration"]["value_extractor"] == "EXTRACT(jsonPayload.duration_ms)"


def test_dashboard_is_json_with_a_tile_per_series(tf):
    # The offline plan evaluates jsonencode(local.dashboard) for every tfvars file.
    dashboard = tf.resources("google_monitoring_dashboard")["operations"]
    assert tf.ref(dashboard["dashboard_json"]) == "jsonencode(local.dashboard)"
    charts = tf.locals["dashboard_charts"]
    titles = re.findall(r'title\s*[=:]\s*"([^"]+)"', json.dumps(charts).replace('\\"', '"'))
    for needed in ("Exchanges by outcome", "Users by outcome", "needs_reauth by reason",
                   "Run duration p99 (ms)", "Backlog: oldest due user's age (s)",
                   "Circuit breaker openings", "Dead-lettered messages waiting"):
        assert needed in titles, needed

