"""The real `terraform init`, `validate` and `plan`, offline (tools/tf_offline_plan).

terraform checks the configuration against the real google, google-beta and archive schemas,
served by a schema-only provider. The good configuration must pass and plan what it declares;
scratch copies with one deliberate error each must fail, each for its own reason.

These are the only Terraform tests that can skip: where no terraform binary is installed
(it is not a Debian package). The cache (npm packages, provider virtualenv) is built on first
use; `make test` builds it beforehand (make tf-offline-cache).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest

from tools.tf_offline_plan import Cache, Result, TerraformNotFound, check, copy_tree, find_terraform

# Building the cache on a fresh machine downloads about 65 MB from npm and a virtualenv from PyPI.
pytestmark = pytest.mark.timeout(1200)

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
EXAMPLE = TERRAFORM_DIR / "terraform.tfvars.example"
ALL_FEATURES = TERRAFORM_DIR / "examples" / "all-features.tfvars"
EXISTING_PROJECT = TERRAFORM_DIR / "examples" / "existing-project.tfvars"

# What each tfvars file plans to create. The numbers are pinned so that a change in what a
# deployment creates is a deliberate edit here; test_plans_create_what_the_configuration_declares
# derives the same sets from the parsed .tf files.
EXPECTED_ADD = {EXAMPLE.name: 102, ALL_FEATURES.name: 145, EXISTING_PROJECT.name: 97}
# The fan-out (fanout.tf and its alert): created with job_mode = "pubsub" only.
FANOUT = {
    f"{rtype}.{name}": "job_mode" for rtype, name in [
        ("google_pubsub_topic", "work"), ("google_pubsub_topic", "dead_letter"),
        ("google_pubsub_subscription", "work_push"), ("google_pubsub_subscription", "dead_letter"),
        ("google_cloudfunctions2_function", "worker"), ("google_service_account", "worker"),
        ("google_service_account", "push"),
        ("google_secret_manager_secret_iam_member", "worker_client_secret"),
        ("google_secret_manager_secret_iam_member", "worker_sealing_public_keys"),
        ("google_secret_manager_secret_iam_member", "worker_sealing_private_keys"),
        ("google_secret_manager_secret_iam_member", "worker_sealing_key"),
        ("google_secret_manager_secret_iam_member", "worker_log_key"),
        ("google_project_iam_member", "worker_datastore_user"),
        ("google_pubsub_topic_iam_member", "work_publisher_job"),
        ("google_cloud_run_service_iam_member", "worker_invoker_push"),
        ("google_service_account_iam_member", "push_token_creator_pubsub_agent"),
        ("google_pubsub_topic_iam_member", "dead_letter_publisher_pubsub_agent"),
        ("google_pubsub_subscription_iam_member", "work_subscriber_pubsub_agent"),
        ("google_monitoring_alert_policy", "dead_letters"),
    ]
}
# Resources behind a switch: created only when it is on.
SWITCHED = {
    "google_firebase_hosting_custom_domain.page": "custom_domain",
    "google_firebase_project.default": "create_firebase_project",
    "google_firestore_database.default": "create_firestore_database",
    "google_firebaserules_ruleset.firestore_deny_clients": "manage_firestore_rules",
    "google_firebaserules_release.firestore": "manage_firestore_rules",
    "google_storage_bucket.gcf_sources": "create_gcf_sources_bucket",
    "google_monitoring_notification_channel.email": "alert_email",
    **FANOUT,
    # Cross-Account Protection (risc.tf), off by default.
    **{address: "risc_enabled" for address in (
        "google_project_service.risc", "google_service_account.risc", "google_service_account.risc_admin",
        "google_project_iam_member.risc_admin_riscconfigs", "google_project_iam_member.risc_datastore_user",
        "google_service_account_iam_member.risc_admin_impersonators",
        "google_secret_manager_secret.refresh_token_id_key",
        "google_secret_manager_secret_iam_member.exchange_token_id_key",
        "google_secret_manager_secret_iam_member.job_token_id_key",
        "google_secret_manager_secret_iam_member.worker_token_id_key",
        "google_secret_manager_secret_iam_member.token_api_token_id_key",
        "google_secret_manager_secret_iam_member.risc_token_id_key",
        "google_secret_manager_secret_iam_member.risc_log_key", "google_cloudfunctions2_function.risc",
        "google_cloud_run_service_iam_member.risc_public",
        "google_cloud_run_service_iam_member.disconnect_invoker_risc",
        "google_firestore_field.security_event_tokens_ttl")},
    # One per listed service account (for_each).
    "google_cloud_run_service_iam_member.token_api_invokers": "app_backend_service_accounts",
    "google_pubsub_topic_iam_member.events_subscribers": "events_subscribers",
}
RISC = {address for address, switch in SWITCHED.items() if switch == "risc_enabled"}
SWITCHED_ON = {
    EXAMPLE.name: set(SWITCHED) - {"google_firebase_hosting_custom_domain.page",
                                   "google_monitoring_notification_channel.email",
                                   "google_cloud_run_service_iam_member.token_api_invokers",
                                   "google_pubsub_topic_iam_member.events_subscribers"} - set(FANOUT) - RISC,
    ALL_FEATURES.name: set(SWITCHED),
    EXISTING_PROJECT.name: set(),
}


@pytest.fixture(scope="session")
def offline_cache() -> Cache:
    try:
        find_terraform()
    except TerraformNotFound as error:
        pytest.skip(str(error))
    cache = Cache()
    cache.ensure()  # under the cache's lock: one build, whichever worker comes first
    return cache


@pytest.fixture(scope="session")
def plans(offline_cache: Cache) -> Result:
    return check(TERRAFORM_DIR, [EXAMPLE, ALL_FEATURES, EXISTING_PROJECT], cache=offline_cache)


def scratch_copy(tmp_path: Path) -> Path:
    """A copy of the repository to break; returns its terraform/ directory."""
    copy_tree(REPO_ROOT, tmp_path / "repo")
    return tmp_path / "repo" / "terraform"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def only_error(result: Result, step: str):
    """The one error diagnostic of a failed check, after asserting it failed at `step`."""
    assert not result.ok, result.report()
    assert [s.name for s in result.steps if not s.ok] == [step], result.report()
    errors = [d for d in result.diagnostics() if d.severity == "error"]
    assert len(errors) == 1, result.report()
    return errors[0]


#-- The configuration as it is --#


def test_configuration_initialises_validates_and_plans(plans):
    assert plans.ok, plans.report()
    assert [s.name for s in plans.steps] == [
        "init", "validate", f"plan -var-file={EXAMPLE.name}", f"plan -var-file={ALL_FEATURES.name}",
        f"plan -var-file={EXISTING_PROJECT.name}"]
    assert not [d for d in plans.diagnostics() if d.severity == "error"]


def test_plan_counts(plans):
    for plan in plans.plans:
        assert plan.var_file is not None
        assert plan.add == EXPECTED_ADD[plan.var_file.name], plan.summary
        assert (plan.change, plan.destroy) == (0, 0), plan.summary
        creates = [a for a, action in plan.changes.items() if action == "create"]
        assert len(creates) == plan.add


def test_plans_create_what_the_configuration_declares(plans, tf):
    declared = {f"{rtype}.{name}" for rtype, name, _, _ in tf.all_resources()}
    assert set(SWITCHED) <= declared
    for plan in plans.plans:
        created = {re.sub(r"\[.*\]$", "", a) for a, action in plan.changes.items() if action == "create"}
        expected = declared - set(SWITCHED) | SWITCHED_ON[plan.var_file.name]
        assert created == expected, f"{plan.var_file.name}: {created ^ expected}"
    # for_each: one API per service, as many as the local lists.
    services = tf.locals["services"].count(".googleapis.com")
    example = plans.plans[0]
    assert len([a for a in example.changes if a.startswith("google_project_service.enabled[")]) == services


def test_all_features_tfvars_switches_every_option_on(tf):
    values = hcl2.loads(ALL_FEATURES.read_text())
    switches = {name for name in tf.variables if name.startswith(("create_", "manage_"))}
    assert switches and all(values.get(name) is True for name in switches), switches
    assert values["custom_domain"] and values["hosting_site_id"]
    assert values["region"] != tf.variables["region"]["default"]
    assert values["allowed_hosted_domains"] and values["oauth_app_testing_mode"] is True
    assert values["oauth_client_secret_version"] != "latest" and values["token_sealing_key_version"] != "latest"
    assert values["risc_enabled"] is True and values["risc_admins"] and values["risc_client_ids"]
    existing = hcl2.loads(EXISTING_PROJECT.read_text())
    assert all(existing.get(name) is False for name in switches)


def test_converted_schema_keeps_the_flags_terraform_checks(offline_cache):
    built = offline_cache.ensure()
    google = next(p for p in built.providers if p.address == "registry.terraform.io/hashicorp/google")
    assert google.version == "6.50.0"
    schemas = json.loads(google.schema.read_text())["provider_schemas"][google.address]["resource_schemas"]
    account = schemas["google_service_account"]["block"]["attributes"]
    assert account["account_id"] == {"type": "string", "required": True}
    assert account["email"] == {"type": "string", "computed": True}
    function = schemas["google_cloudfunctions2_function"]["block"]
    build_config = function["block_types"]["build_config"]
    assert (build_config["nesting_mode"], build_config["max_items"]) == ("list", 1)
    assert "docker_repository" in build_config["block"]["attributes"]
    assert function["block_types"]["service_config"]["block"]["attributes"]["uri"] == {
        "type": "string", "computed": True}


#-- One deliberate error each: every one must fail --#


# (file, text, replacement, the error's summary, a sentence of its detail): one error each.
BREAKAGES = {
    "missing-attribute": ("outputs.tf", "exchange.service_config[0].uri", "exchange.service_config[0].url",
                          "Unsupported attribute", 'no argument, nested block, or exported attribute named "url"'),
    "unknown-argument": ("iam.tf", 'resource "google_service_account" "exchange" {\n',
                         'resource "google_service_account" "exchange" {\n  no_such_argument = "x"\n\n',
                         "Unsupported argument", 'An argument named "no_such_argument" is not expected here'),
    # The schema says email is computed only; the provider refuses it, as SDKv2 providers do.
    "computed-only": ("iam.tf", "  account_id   = local.build_sa_id\n",
                      '  account_id   = local.build_sa_id\n  email        = "build@example.com"\n',
                      "Computed-only attribute cannot be set",
                      "google_service_account: email: this field cannot be set"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_configuration_error_fails_validate(tmp_path, offline_cache, breakage):
    filename, text, replacement, summary, detail = BREAKAGES[breakage]
    terraform_dir = scratch_copy(tmp_path)
    edit(terraform_dir / filename, text, replacement)

    error = only_error(check(terraform_dir, plan=False, root=terraform_dir.parent, cache=offline_cache),
                       "validate")

    assert error.summary == summary
    assert detail in error.detail
    assert error.where.startswith(filename)


# Also with every type served: cutting the schema to the declared types changes no verdict.
@pytest.mark.parametrize("full_schema", [False, True], ids=["declared-types", "full-schema"])
def test_unknown_resource_type_fails(tmp_path, offline_cache, full_schema):
    terraform_dir = scratch_copy(tmp_path)
    (terraform_dir / "zz_broken.tf").write_text('resource "google_no_such_thing" "x" {}\n')

    result = check(terraform_dir, plan=False, root=terraform_dir.parent, cache=offline_cache,
                   full_schema=full_schema)

    error = only_error(result, "validate")

    assert error.summary == "Invalid resource type"
    assert 'does not support resource type "google_no_such_thing"' in error.detail


BAD_REGIONS = [
    "Not A Region",
    # A gen2 function region where Firebase Hosting cannot rewrite to Cloud Run: without the
    # validation, apply would fail halfway, at publish_site. (test_terraform_invariants checks
    # that the other two such regions are left out of the list as well.)
    "africa-south1",
]


@pytest.fixture(scope="module")
def bad_region_plans(tmp_path_factory, offline_cache) -> dict[str, object]:
    """One init and validate, then one plan per region (each from the example tfvars)."""
    directory = tmp_path_factory.mktemp("regions")
    files = {}
    for index, region in enumerate(BAD_REGIONS):
        files[region] = directory / f"region-{index}.tfvars"
        files[region].write_text(EXAMPLE.read_text() + f'\nregion = "{region}"\n')
    result = check(TERRAFORM_DIR, list(files.values()), cache=offline_cache)
    assert result.step("validate").ok, result.report()
    return {region: result.step(f"plan -var-file={path.name}") for region, path in files.items()}


@pytest.mark.parametrize("region", BAD_REGIONS)
def test_region_failing_its_validation_fails_the_plan(bad_region_plans, region):
    plan = bad_region_plans[region]

    assert not plan.ok and plan.add == 0
    (error,) = plan.errors
    assert error.summary == "Invalid value for variable"
    assert f'var.region is "{region}"' in error.values
    assert "Firebase Hosting can rewrite to Cloud Run" in error.detail
