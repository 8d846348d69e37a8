"""Invariants of the Terraform deployment (issue 5), checked on the parsed `.tf` files.

These stand in for review rules that `terraform validate` cannot express: least-privilege IAM,
an internal-only scheduled function, secrets that never enter Terraform, the index the job's
query needs, and a configuration every variable of which is documented.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
RUN_INVOKER = "roles/run.invoker"
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
FUNCTION_TYPE = "google_cloudfunctions2_function"
IAM_TYPES = re.compile(r"_iam_(member|binding|policy)$")

# Set for the platform, not read by config.py: functions-framework's log execution ids.
PLATFORM_ENVIRONMENT = {"LOG_EXECUTION_ID"}


def design_configuration(repo_root) -> set[str]:
    """The variables of docs/design.md's configuration table (the functions' contract)."""
    design = (repo_root / "docs" / "design.md").read_text()
    table = design[design.index("Configuration ("):design.index("## Google endpoints")]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", table, re.M))


def config_reads(repo_root) -> set[str]:
    """The variables functions/offline_access/config.py reads."""
    source = (repo_root / "functions" / "offline_access" / "config.py").read_text()
    return set(re.findall(r"\"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\"", source))


def sa_of(tf, member: str) -> str:
    """`"serviceAccount:${google_service_account.job.email}"` -> `"job"` (`risc[0]` -> `"risc"`:
    the accounts behind a switch have a count)."""
    match = re.fullmatch(r"serviceAccount:\$\{google_service_account\.([a-z_]+)(?:\[0\])?\.email\}", member)
    assert match, f"member {member!r} is not one of this configuration's service accounts"
    return match.group(1)


def function_sa(tf, function: dict) -> str:
    email = tf.ref(tf.block(function["service_config"])["service_account_email"])
    match = re.fullmatch(r"google_service_account\.([a-z_]+)(?:\[0\])?\.email", email)
    assert match, f"function runs as {email!r}, not a service account of its own"
    return match.group(1)


def default_of(tf, name: str):
    return tf.variables[name]["default"]


#-- Layout --#


def test_layout_follows_the_cft_module_shape(terraform_dir):
    for name in ("versions.tf", "variables.tf", "outputs.tf", "terraform.tfvars.example",
                 "README.md", "terraform.mk", "scripts/publish_site.py"):
        assert (terraform_dir / name).is_file(), f"terraform/{name} is missing"
    # One file per concern.
    for name in ("apis.tf", "iam.tf", "secrets.tf", "firestore.tf", "functions.tf",
                 "scheduler.tf", "hosting.tf"):
        assert (terraform_dir / name).is_file(), f"terraform/{name} is missing"


def test_versions_pin_terraform_and_every_provider(tf):
    terraform = tf.block(tf.parsed["versions.tf"]["terraform"])
    assert terraform["required_version"].startswith(">= ")
    providers = tf.block(terraform["required_providers"])
    assert set(providers) >= {"google", "google-beta", "archive"}
    for name, spec in providers.items():
        if name.startswith("__"):
            continue
        assert spec["source"] == f"hashicorp/{name}"
        assert ">=" in spec["version"] and "<" in spec["version"].replace("<=", ""), (
            f"{name}: pin a lower and an upper bound, got {spec['version']!r}")


def test_every_resource_file_has_section_headers(tf):
    for filename, text in tf.texts.items():
        if filename == "versions.tf":
            continue
        assert re.search(r"^#-- .+ --#$", text, re.M), f"{filename} has no #-- Section --# header"


#-- Variables --#


def test_every_variable_has_a_description_and_a_type(tf):
    assert tf.variables
    for name, body in tf.variables.items():
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"


def test_variables_without_a_safe_default_are_required(tf):
    # The project and the OAuth client are the user's: no default would be safe.
    for name in ("project_id", "oauth_client_id"):
        assert "default" not in tf.variables[name], f"{name} must be required"


def test_key_variables_are_validated(tf):
    for name in ("project_id", "region", "oauth_client_id", "oauth_client_secret_version",
                 "token_sealing_key_version", "token_sealing_public_key_version",
                 "log_user_ref_key_version", "oauth_scopes", "name_prefix",
                 "exchange_max_instances", "users_collection"):
        assert tf.variables[name].get("validation"), f"variable {name} has no validation"


def _looks_secret(value: str) -> bool:
    if value.startswith("GOCSPX-") or "PRIVATE KEY" in value:
        return True
    # A raw sealing key: 32 bytes in base64 (44 characters).
    if re.fullmatch(r"[A-Za-z0-9+/]{43}=", value):
        return len(base64.b64decode(value)) == 32
    return False


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_secret_value_in_any_default_or_example(tf, terraform_dir):
    secretish = re.compile(r"secret|key|password|token|credential", re.I)
    for name, body in tf.variables.items():
        default = body.get("default")
        for value in _strings(default):
            assert not _looks_secret(value), f"variable {name} has a secret-looking default"
        if secretish.search(name) and default is not None:
            # Only version selectors may have a default: never a secret value.
            assert re.fullmatch(r"latest|[1-9][0-9]*", str(default)), (
                f"variable {name} defaults to {default!r}")
    example = (terraform_dir / "terraform.tfvars.example").read_text()
    assert "GOCSPX-" not in example
    assert not re.search(r"^\s*[a-z_]*(secret|sealing_key)\s*=\s*\"(?!latest|[0-9]+\")", example,
                         re.M | re.I), "terraform.tfvars.example assigns a secret"
    for value in _strings([tf.locals]):
        assert not _looks_secret(value), "a local holds a secret-looking value"


def test_no_variable_carries_a_secret_value(tf):
    # The client secret and the sealing key are added out of band (Makefile targets).
    for name in tf.variables:
        assert not re.fullmatch(r".*(client_secret|sealing_key)", name), (
            f"variable {name} would put a secret into tfvars and state")


#-- Secrets --#


def test_secrets_are_created_empty(tf):
    secrets = tf.resources("google_secret_manager_secret")
    assert set(secrets) == {"oauth_client_secret", "token_sealing_public_keys",
                            "token_sealing_private_keys", "token_sealing_key", "log_user_ref_key",
                            "session_key", "refresh_token_id_key"}
    for name, body in secrets.items():
        replication = tf.block(body["replication"])
        assert "auto" in replication, f"secret {name} should use automatic replication"
    # Values come from `make set-client-secret` / `make rotate-sealing-key` only.
    for rtype, name, body, _ in tf.all_resources():
        assert rtype != "google_secret_manager_secret_version", f"{rtype}.{name} stores a value"
        assert "secret_data" not in body
    assert "google_secret_manager_secret_version" not in tf.text()


def test_secret_accessors_are_exactly_the_functions_that_need_each_secret(tf):
    bindings = tf.resources("google_secret_manager_secret_iam_member")
    granted = set()
    for name, body in bindings.items():
        assert body["role"] == SECRET_ACCESSOR, f"{name}: unexpected role {body['role']}"
        secret = re.fullmatch(r"google_secret_manager_secret\.([a-z_]+)(?:\[0\])?\.secret_id",
                              tf.ref(body["secret_id"]))
        assert secret, f"{name}: binds on {body['secret_id']!r}, not on a secret of ours"
        granted.add((secret.group(1), sa_of(tf, body["member"])))
    assert granted == {
        # The exchange seals with the public key and logs users by the log key.
        ("oauth_client_secret", "exchange"),
        ("token_sealing_public_keys", "exchange"),
        ("log_user_ref_key", "exchange"),
        # The job refreshes tokens: it needs the client secret too, and it opens and re-seals
        # them: the private keys, the first releases' AES keys and the public key.
        ("oauth_client_secret", "job"),
        ("token_sealing_public_keys", "job"),
        ("token_sealing_private_keys", "job"),
        ("token_sealing_key", "job"),
        ("log_user_ref_key", "job"),
        # The session key: the two public functions, which set and read the cookie.
        ("session_key", "exchange"),
        ("session_key", "account"),
        ("log_user_ref_key", "account"),
        # disconnect_user opens the token to revoke it; revocation needs no client secret.
        ("token_sealing_private_keys", "disconnect"),
        ("token_sealing_public_keys", "disconnect"),
        ("token_sealing_key", "disconnect"),
        ("log_user_ref_key", "disconnect"),
        # The fan-out's worker refreshes and opens tokens in pubsub mode, as the job does.
        ("oauth_client_secret", "worker"),
        ("token_sealing_public_keys", "worker"),
        ("token_sealing_private_keys", "worker"),
        ("token_sealing_key", "worker"),
        ("log_user_ref_key", "worker"),
        # Cross-Account Protection: the refresh-token identifiers' key for the functions that
        # store tokens (the exchange, the job) and the receiver that matches events; the
        # receiver logs users by the log key, and reads nothing else.
        ("refresh_token_id_key", "exchange"),
        ("refresh_token_id_key", "job"),
        ("refresh_token_id_key", "risc"),
        ("log_user_ref_key", "risc"),
        ("refresh_token_id_key", "worker"),
        ("refresh_token_id_key", "token_api"),
        # The token API refreshes as the job does, and reads the session key for POST /session.
        ("oauth_client_secret", "token_api"),
        ("token_sealing_public_keys", "token_api"),
        ("token_sealing_private_keys", "token_api"),
        ("token_sealing_key", "token_api"),
        ("log_user_ref_key", "token_api"),
        ("session_key", "token_api"),
    }
    for rtype in ("google_secret_manager_secret_iam_binding", "google_secret_manager_secret_iam_policy"):
        assert not tf.resources(rtype), f"use *_iam_member, not {rtype}"


OPENING_SECRETS = {"token_sealing_private_keys", "token_sealing_key"}


def test_the_public_functions_can_read_no_key_that_opens_tokens(tf):
    """Review fault 4: code execution or SSRF in a public function must not expose tokens."""
    functions = tf.resources(FUNCTION_TYPE)
    opening = {function_sa(tf, functions[name]) for name in ("job", "disconnect", "worker", "token_api")}
    public = {name: function_sa(tf, functions[name]) for name in ("exchange", "account", "risc")}
    for name, body in tf.resources("google_secret_manager_secret_iam_member").items():
        secret = tf.ref(body["secret_id"]).split(".")[1].removesuffix("[0]")
        if secret in OPENING_SECRETS:
            assert sa_of(tf, body["member"]) in opening, (
                f"{name}: only the job, its worker, disconnect_user and token_api may read {secret}")
    for function, sa in public.items():
        # Not by project-wide roles either, nor by its environment.
        for name, body in tf.resources("google_project_iam_member").items():
            if sa_of(tf, body["member"]) == sa:
                assert not re.search(r"secretmanager|owner|editor", str(body["role"])), name
        env = tf.block(functions[function]["service_config"])["environment_variables"]
        assert "opening_environment" not in env and "local.function_environment" in env, function
    shared = tf.locals["function_environment"]
    assert not {"TOKEN_SEALING_PRIVATE_KEYS_SECRET", "TOKEN_SEALING_KEY_VERSION"} & set(shared)
    assert not any(secret in str(value) for value in shared.values() for secret in OPENING_SECRETS)
    job_env = tf.locals["opening_environment"]
    assert job_env.startswith("${merge(local.function_environment, ")
    assert "TOKEN_SEALING_PRIVATE_KEYS_SECRET = google_secret_manager_secret.token_sealing_private_keys.id" \
        in job_env


def test_sealed_ciphertexts_are_not_indexed(tf):
    field = tf.resources("google_firestore_field")["sealed_ciphertexts_unindexed"]
    assert field["for_each"] == '${toset(["refresh_token.ct", "access_token.ct"])}'
    assert tf.block(field["index_config"]) == {"__is_block__": True}  # empty: no index at all
    assert tf.ref(field["collection"]) == "var.users_collection"


def test_no_project_level_secret_access(tf):
    for name, body in tf.resources("google_project_iam_member").items():
        assert not str(body["role"]).startswith("roles/secretmanager"), (
            f"{name} grants Secret Manager on the whole project")


#-- Service accounts and IAM --#


def test_one_service_account_per_function_and_one_for_scheduler(tf):
    functions = tf.resources(FUNCTION_TYPE)
    assert set(functions) == {"exchange", "job", "account", "disconnect", "worker", "risc", "token_api"}
    runtime = {name: function_sa(tf, body) for name, body in functions.items()}
    assert len(set(runtime.values())) == len(functions), f"functions share an identity: {runtime}"
    oidc = tf.block(tf.block(tf.resources("google_cloud_scheduler_job")["offline_job"]["http_target"])["oidc_token"])
    scheduler = tf.ref(oidc["service_account_email"])
    assert scheduler == "google_service_account.scheduler.email"
    assert "scheduler" not in runtime.values() and "push" not in runtime.values()
    accounts = tf.resources("google_service_account")
    assert set(runtime.values()) | {"scheduler", "push"} <= set(accounts)


def test_functions_build_with_their_own_service_account(tf):
    for name, body in tf.resources(FUNCTION_TYPE).items():
        build = tf.block(body["build_config"])
        assert tf.ref(build["service_account"]) == "google_service_account.build.id", name


def test_project_level_roles_are_minimal(tf):
    # Firestore IAM has no per-collection scope; log entries are written to a project.
    allowed = {
        "exchange": {"roles/datastore.user"},
        "job": {"roles/datastore.user"},
        "account": {"roles/datastore.user"},
        "disconnect": {"roles/datastore.user"},
        "worker": {"roles/datastore.user"},
        "token_api": {"roles/datastore.user"},
        "build": {"roles/logging.logWriter"},
        "risc": {"roles/datastore.user"},
        # Google's RISC API requires it of the account that registers the stream.
        "risc_admin": {"roles/riscconfigs.admin"},
    }
    granted = set()
    for name, body in tf.resources("google_project_iam_member").items():
        assert "for_each" not in body and "each." not in str(body["role"]), f"{name}: name its one role"
        account = sa_of(tf, body["member"])
        assert body["role"] in allowed.get(account, set()), f"{name}: {account} gets {body['role']}"
        assert not str(body["role"]).startswith(("roles/storage", "roles/artifactregistry")), (
            f"{name}: storage and Artifact Registry roles belong on the bucket or the repository")
        granted.add((account, body["role"]))
    assert granted == {(a, r) for a, roles in allowed.items() for r in roles}
    assert not tf.resources("google_project_iam_binding")
    assert not tf.resources("google_project_iam_policy")


def test_build_account_writes_only_to_the_functions_repository(tf):
    repository = tf.resources("google_artifact_registry_repository")["functions"]
    assert repository["format"] == "DOCKER"
    assert tf.ref(repository["location"]) == "var.region"
    assert any(p["action"] == "DELETE" for p in repository["cleanup_policies"]), "old images pile up"
    assert repository["cleanup_policy_dry_run"] is False
    for name, body in tf.resources(FUNCTION_TYPE).items():
        build = tf.block(body["build_config"])
        assert tf.ref(build["docker_repository"]) == "google_artifact_registry_repository.functions.id", name
    bindings = tf.resources("google_artifact_registry_repository_iam_member")
    assert {(tf.ref(b["repository"]), b["role"], sa_of(tf, b["member"])) for b in bindings.values()} == {
        ("google_artifact_registry_repository.functions.name", "roles/artifactregistry.writer", "build")}
    for rtype in ("google_artifact_registry_repository_iam_binding", "google_artifact_registry_repository_iam_policy"):
        assert not tf.resources(rtype), f"use *_iam_member, not {rtype}"


def test_build_account_reads_only_the_two_source_buckets(tf):
    # Cloud Functions stages storage_source in gcf-v2-sources-PROJECT_NUMBER-REGION; the build's
    # fetch step reads it there.
    assert tf.locals["gcf_sources_bucket"] == "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
    staging = tf.resources("google_storage_bucket")["gcf_sources"]
    assert tf.ref(staging["name"]) == "local.gcf_sources_bucket"
    assert tf.ref(staging["count"]) == "var.create_gcf_sources_bucket ? 1 : 0"
    readers = {}
    for name, body in tf.resources("google_storage_bucket_iam_member").items():
        assert sa_of(tf, body["member"]) == "build", f"{name}: who else reads the sources?"
        assert body["role"] == "roles/storage.objectViewer", f"{name}: read access is enough"
        readers[tf.ref(body["bucket"])] = name
    assert set(readers) == {"local.gcf_sources_bucket", "google_storage_bucket.functions_source.name"}
    # The grant must exist before the first build: after the bucket, before the functions.
    gcf_reader = tf.resources("google_storage_bucket_iam_member")[readers["local.gcf_sources_bucket"]]
    assert [tf.ref(d) for d in gcf_reader["depends_on"]] == ["google_storage_bucket.gcf_sources"]
    build_grants = {f"google_storage_bucket_iam_member.{n}" for n in readers.values()} | {
        "google_artifact_registry_repository_iam_member.build_writer",
        "google_project_iam_member.build_log_writer"}
    for name, body in tf.resources(FUNCTION_TYPE).items():
        assert build_grants <= {tf.ref(d) for d in body["depends_on"]}, f"{name} may build before its grants"
    for rtype in ("google_storage_bucket_iam_binding", "google_storage_bucket_iam_policy"):
        assert not tf.resources(rtype), f"use *_iam_member, not {rtype}"


def test_every_iam_role_has_a_doc_link_comment(tf):
    for filename in ("iam.tf", "fanout.tf", "risc.tf"):
        text = tf.texts[filename]
        for match in re.finditer(r'^resource "([a-z0-9_]+_iam_member)" "([a-z_]+)"', text, re.M):
            preceding = text[:match.start()].rstrip().splitlines()[-7:]
            assert any("https://cloud.google.com/" in line for line in preceding), (
                f"{match.group(1)}.{match.group(2)} has no documentation link above it")


def _iam_on(tf, function: str) -> list[tuple[str, str, dict]]:
    targets_of_function = {f"{FUNCTION_TYPE}.{function}.name", f"{FUNCTION_TYPE}.{function}[0].name"}
    found = []
    for rtype, name, body, _ in tf.all_resources():
        if not IAM_TYPES.search(rtype):
            continue
        targets = {tf.ref(body.get(key, "")) for key in ("service", "name", "cloud_function")}
        if targets_of_function & targets:
            found.append((rtype, name, body))
    return found


def test_scheduled_function_is_internal_and_invoked_by_the_scheduler_only(tf):
    job = tf.resources(FUNCTION_TYPE)["job"]
    service = tf.block(job["service_config"])
    assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    bindings = _iam_on(tf, "job")
    assert bindings, "run.invoker for the Scheduler account is missing"
    for rtype, name, body in bindings:
        members = body.get("members", [body.get("member")])
        assert not PUBLIC_MEMBERS & set(members), f"{rtype}.{name} makes the job public"
        assert body["role"] == RUN_INVOKER
        assert [sa_of(tf, m) for m in members] == ["scheduler"], f"{rtype}.{name}: {members}"
    for rtype, name, body, _ in tf.all_resources():
        if IAM_TYPES.search(rtype) and "job" in str(body):
            assert not PUBLIC_MEMBERS & set(_strings(body)), f"{rtype}.{name} is public"


def test_exchange_function_is_public_but_capped(tf):
    exchange = tf.resources(FUNCTION_TYPE)["exchange"]
    service = tf.block(exchange["service_config"])
    assert service["ingress_settings"] == "ALLOW_ALL"  # Firebase Hosting comes from the internet
    assert service["min_instance_count"] == 0
    assert tf.ref(service["max_instance_count"]) == "var.exchange_max_instances"
    assert 1 <= default_of(tf, "exchange_max_instances") <= 100
    assert tf.ref(service["max_instance_request_concurrency"]) == "var.exchange_concurrency"
    assert service["available_cpu"] == "1"
    bindings = _iam_on(tf, "exchange")
    assert [(b["role"], b["member"]) for _, _, b in bindings] == [(RUN_INVOKER, "allUsers")]


def test_functions_run_the_design_entry_points_on_python312(tf):
    entry_points = {}
    for name, body in tf.resources(FUNCTION_TYPE).items():
        build = tf.block(body["build_config"])
        assert build["runtime"] == "python312"
        entry_points[name] = build["entry_point"]
        assert tf.block(body["service_config"])["all_traffic_on_latest_revision"] is True
    assert entry_points == {"exchange": "exchange_code", "job": "run_offline_job",
                            "account": "account_api", "disconnect": "disconnect_user",
                            "worker": "run_offline_worker", "risc": "risc_receiver",
                            "token_api": "token_api"}


def test_scheduled_function_is_small_and_bounded(tf):
    service = tf.block(tf.resources(FUNCTION_TYPE)["job"]["service_config"])
    assert service["min_instance_count"] == 0
    assert tf.ref(service["max_instance_count"]) == "var.job_max_instances"
    assert default_of(tf, "job_max_instances") <= 3
    assert service["max_instance_request_concurrency"] == 1
    assert tf.ref(service["timeout_seconds"]) == "var.job_timeout_seconds"
    assert "available_cpu" in service and "available_memory" in service


#-- Function source --#


def test_source_is_zipped_from_functions_and_named_by_content_hash(tf):
    archive = tf.data("archive_file")["functions"]
    assert archive["type"] == "zip"
    assert tf.ref(archive["source_dir"]) == "local.functions_source_dir"
    assert tf.locals["functions_source_dir"].endswith("/../functions")
    excludes = tf.locals["functions_source_excludes"]
    for pattern in ("__pycache__", "tests"):
        assert pattern in excludes, f"{pattern} is not excluded from the archive"
    obj = tf.resources("google_storage_bucket_object")["functions_source"]
    assert "data.archive_file.functions.output_md5" in obj["name"]
    for name, body in tf.resources(FUNCTION_TYPE).items():
        source = tf.block(tf.block(tf.block(body["build_config"])["source"])["storage_source"])
        assert tf.ref(source["object"]) == "google_storage_bucket_object.functions_source.name", name


@pytest.mark.parametrize("name", ["functions_source", "gcf_sources"])
def test_source_buckets_are_private_versioned_and_pruned(tf, name):
    bucket = tf.resources("google_storage_bucket")[name]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert tf.block(bucket["versioning"])["enabled"] is True
    rule = tf.block(bucket["lifecycle_rule"])
    assert tf.block(rule["action"])["type"] == "Delete"
    assert tf.ref(bucket["location"]) == "var.region"
    for rtype, name, body, _ in tf.all_resources():
        if rtype.startswith("google_storage_bucket_iam"):
            assert not PUBLIC_MEMBERS & set(_strings(body)), f"{rtype}.{name} is public"


#-- Scheduler --#


def test_scheduler_calls_the_job_with_an_oidc_token_for_its_url(tf):
    job = tf.resources("google_cloud_scheduler_job")["offline_job"]
    target = tf.block(job["http_target"])
    uri = f"{FUNCTION_TYPE}.job.service_config[0].uri"
    assert tf.ref(target["uri"]) == uri
    assert "oauth_token" not in target
    oidc = tf.block(target["oidc_token"])
    assert tf.ref(oidc["audience"]) == uri
    assert tf.ref(oidc["service_account_email"]) == "google_service_account.scheduler.email"
    assert tf.block(job["retry_config"])["retry_count"] == 0
    assert job["attempt_deadline"] == "${var.job_attempt_deadline_seconds}s"


def test_time_budget_is_below_the_deadline_which_is_below_the_timeout(tf):
    budget = default_of(tf, "job_time_budget_seconds")
    deadline = default_of(tf, "job_attempt_deadline_seconds")
    timeout = default_of(tf, "job_timeout_seconds")
    assert budget < deadline < timeout
    job = tf.resources("google_cloud_scheduler_job")["offline_job"]
    condition = tf.block(tf.block(job["lifecycle"])["precondition"])["condition"]
    assert "var.job_time_budget_seconds < var.job_attempt_deadline_seconds" in condition
    assert "var.job_attempt_deadline_seconds < var.job_timeout_seconds" in condition
    env = tf.locals["function_environment"]
    assert tf.ref(env["JOB_TIME_BUDGET_SECONDS"]) == "tostring(var.job_time_budget_seconds)"


#-- Firestore --#


def test_firestore_is_native_with_the_due_users_index(tf):
    database = tf.resources("google_firestore_database")["default"]
    assert database["type"] == "FIRESTORE_NATIVE"
    index = tf.resources("google_firestore_index")["users_due"]
    assert tf.ref(index["collection"]) == "var.users_collection"
    assert index["query_scope"] == "COLLECTION"
    fields = [(f["field_path"], f["order"]) for f in index["fields"]]
    assert fields == [("status", "ASCENDING"), ("next_run_at", "ASCENDING"),
                      ("__name__", "ASCENDING")]
    env = tf.locals["function_environment"]
    assert tf.ref(env["USERS_COLLECTION"]) == "var.users_collection"


def test_firestore_rules_deny_every_client(terraform_dir, tf):
    rules = (terraform_dir / "templates" / "firestore.rules").read_text()
    assert re.search(r"match /\{document=\*\*\}\s*\{\s*allow read, write: if false;", rules)
    assert "if true" not in rules
    assert tf.resources("google_firebaserules_release")["firestore"]["name"] == "cloud.firestore"


#-- Function environment --#


def test_function_environment_matches_the_design(tf, repo_root):
    # The job's own settings (the keys that open tokens) are merged over the shared ones.
    env = {**tf.locals["function_environment"],
           **{name: "" for name in ("TOKEN_SEALING_PRIVATE_KEYS_SECRET", "TOKEN_SEALING_KEY_VERSION")
              if name in tf.locals["opening_environment"]}}
    design = design_configuration(repo_root)
    assert {"GOOGLE_CLOUD_PROJECT", "OAUTH_CLIENT_SECRET_VERSION", "JOB_TIME_BUDGET_SECONDS"} <= design
    # Every setting of the contract is set explicitly, and nothing the functions ignore.
    assert design <= set(env), f"not set: {design - set(env)}"
    unknown = set(env) - design - config_reads(repo_root) - PLATFORM_ENVIRONMENT
    assert not unknown, f"set but read by nobody: {unknown}"
    assert env["LOG_EXECUTION_ID"] == "true"
    assert not any(name.endswith("_EMULATOR_HOST") for name in env)
    assert re.fullmatch(
        r"\$\{google_secret_manager_secret\.oauth_client_secret\.id\}/versions/\$\{var\.oauth_client_secret_version\}",
        env["OAUTH_CLIENT_SECRET_VERSION"])
    assert re.fullmatch(
        r"\$\{google_secret_manager_secret\.token_sealing_public_keys\.id\}/versions/"
        r"\$\{var\.token_sealing_public_key_version\}", env["TOKEN_SEALING_PUBLIC_KEY_VERSION"])
    assert re.fullmatch(
        r"\$\{google_secret_manager_secret\.log_user_ref_key\.id\}/versions/\$\{var\.log_user_ref_key_version\}",
        env["LOG_USER_REF_KEY_VERSION"])
    assert '"${google_secret_manager_secret.token_sealing_key.id}/versions/${var.token_sealing_key_version}"' \
        in tf.locals["opening_environment"]
    assert tf.ref(env["ALLOWED_ORIGINS"]) == 'join(",", local.allowed_origins)'
    functions = tf.resources(FUNCTION_TYPE)
    assert tf.block(functions["job"]["service_config"])["environment_variables"] == \
        "${local.opening_environment}"
    assert "local.function_environment" in \
        tf.block(functions["exchange"]["service_config"])["environment_variables"]


def test_region_is_one_where_hosting_can_rewrite_to_cloud_run(tf):
    validation = tf.block(tf.variables["region"]["validation"])
    regions = set(re.findall(r'"([a-z]+-[a-z]+[0-9]+)"', validation["condition"]))
    assert "var.region" in validation["condition"] and "contains(" in validation["condition"]
    # Firebase's list (terraform/variables.tf cites it): 37 regions.
    assert len(regions) == 37
    assert {default_of(tf, "region"), "europe-west1", "asia-northeast1", "us-east4"} <= regions
    # Gen2 function regions that Hosting cannot rewrite to (shared/reference/platform-notes.md).
    assert not regions & {"africa-south1", "europe-north2", "northamerica-south1"}
    assert "firebase.google.com/docs/hosting/full-config" in validation["error_message"]
    source = "https://firebase.google.com/docs/hosting/full-config#rewrite-cloud-run-container"
    assert source in tf.texts["variables.tf"], "cite where the list comes from"


def test_deployment_reports_secret_versions_still_latest(tf):
    value = tf.outputs["unpinned_secret_versions"]["value"]
    for name in ("oauth_client_secret_version", "token_sealing_public_key_version",
                 "log_user_ref_key_version", "session_key_version"):
        assert f"var.{name}" in value, name
    assert '"latest"' in value


def test_redirect_uri_defaults_to_postmessage(tf):
    assert default_of(tf, "oauth_redirect_uri") == "postmessage"


#-- Hosting --#


def test_page_origin_belongs_to_the_deployment(tf):
    origins = tf.locals["allowed_origins"]
    # A shared origin would let any other page there use our client ID.
    assert not re.search(r"https://storage\.googleapis\.com|\.storage\.googleapis\.com", tf.text())
    assert ".web.app" in origins and "local.hosting_site_id" in origins
    assert "local.custom_domain_origin" in origins
    # The app's own origins are added only when listed, each an https origin.
    assert "var.app_origins" in origins and default_of(tf, "app_origins") == []


def test_hosting_rewrites_the_exchange_path_to_the_function(tf):
    assert tf.locals["exchange_path"] == "/api/exchange"
    assert tf.locals["account_api_path"] == "/api"
    hosting = tf.locals["hosting_config"]
    # The first matching rewrite wins: the exchange before the rest of /api/**.
    exchange, account = hosting["rewrites"]
    assert tf.ref(exchange["glob"]) == "local.exchange_path"
    assert tf.ref(exchange["run"]["serviceId"]) == f"{FUNCTION_TYPE}.exchange.name"
    assert tf.ref(exchange["run"]["region"]) == "var.region"
    assert account["glob"] == "${local.account_api_path}/**"
    assert tf.ref(account["run"]["serviceId"]) == f"{FUNCTION_TYPE}.account.name"
    assert tf.ref(account["run"]["region"]) == "var.region"
    # The keys static_site/app.js reads (localdev/site_config.py writes the same ones); the
    # exchange URL and the account API are same-origin paths.
    page_config = tf.locals["page_config"]
    site_config = pytest.importorskip("localdev.site_config")
    local_keys = set(json.loads(site_config.config_js(
        client_id="c", exchange_url="/e", scopes="openid", gis_script_url="g",
        account_api_url="/api").split("Object.freeze(", 1)[1].rsplit(");", 1)[0]))
    assert set(page_config) == local_keys == {
        "clientId", "exchangeUrl", "accountApiUrl", "scopes", "gisScriptUrl", "appName",
        "logoUrl", "privacyPolicyUrl", "termsUrl", "supportUrl"}
    assert page_config["exchangeUrl"] == "${local.exchange_path}"
    assert page_config["accountApiUrl"] == "${local.account_api_path}"
    assert tf.ref(page_config["appName"]) == "var.app_name"
    assert page_config["gisScriptUrl"] == "https://accounts.google.com/gsi/client"
    assert tf.ref(page_config["clientId"]) == "var.oauth_client_id"


def _csp(tf) -> str:
    # The local is join("; ", [...]) of plain strings: rebuild it.
    return "; ".join(re.findall(r'"([^"]*)"', tf.locals["content_security_policy"])[1:])


def test_hosting_sets_the_security_headers(tf):
    headers = tf.locals["security_headers"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    assert tf.ref(headers["Content-Security-Policy"]) == "local.content_security_policy"
    csp = _csp(tf)
    for directive in ("default-src 'self'", "script-src 'self' https://accounts.google.com",
                      "connect-src 'self' https://accounts.google.com",
                      "frame-src https://accounts.google.com",
                      "img-src 'self' data: https://accounts.google.com https://*.googleusercontent.com",
                      "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp.split("; "), f"CSP lacks {directive!r}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    sources = set(re.findall(r"https://[^\s;\"']+", csp))
    assert sources == {"https://accounts.google.com", "https://*.googleusercontent.com"}
    (security, *_) = tf.locals["hosting_config"]["headers"]
    assert security == {"glob": "**", "headers": "${local.security_headers}"}


def test_hosting_headers_match_the_local_page_server(tf):
    # `make dev` serves the page with localdev/site_config.py's headers; production must
    # send the same ones, or the browser tests would not test what users get.
    site_config = pytest.importorskip("localdev.site_config")
    local = site_config.security_headers(exchange_url="/api/exchange",
                                         gis_script_url="https://accounts.google.com/gsi/client")
    production = dict(tf.locals["security_headers"],
                      **{"Content-Security-Policy": _csp(tf)})
    for name, value in local.items():
        if name == "Cache-Control":
            continue  # set on the page's files only, not on the rewritten API responses
        assert production.get(name) == value, f"{name} differs from the local page server"
    cache = tf.locals["hosting_config"]["headers"][1:]
    assert all(h["headers"] == {"Cache-Control": "no-cache"} for h in cache)


def test_apply_publishes_the_page_with_its_generated_config(tf, terraform_dir):
    publish = tf.resources("terraform_data")["publish_site"]
    triggers = publish["triggers_replace"]
    assert {"files", "config_js", "hosting_config", "script"} <= set(triggers)
    exec_ = tf.block(publish["provisioner"])["local-exec"]
    env = exec_["environment"]
    assert tf.ref(env["PUBLISH_CONFIG_JS"]) == "local.config_js"
    assert tf.ref(env["PUBLISH_HOSTING_CONFIG"]) == "local.hosting_config_json"
    assert "publish_site.py" in exec_["command"]
    depends = {tf.ref(d) for d in publish["depends_on"]}
    assert f"{FUNCTION_TYPE}.exchange" in depends  # Hosting rejects rewrites to missing services
    template = (terraform_dir / "templates" / "config.js.tftpl").read_text()
    assert "window.APP_CONFIG" in template and "jsonencode(config)" in template


#-- Outputs --#


def test_outputs_cover_urls_origin_and_secrets(tf):
    outputs = tf.outputs
    for name in ("page_url", "oauth_javascript_origin", "exchange_url", "exchange_function_uri",
                 "job_function_uri", "secrets_to_fill", "oauth_client_secret_id",
                 "token_sealing_key_secret_id", "token_sealing_key_secrets", "key_operations_env",
                 "project_id"):
        assert name in outputs, f"output {name} is missing"
    for name, body in outputs.items():
        assert str(body.get("description", "")).strip(), f"output {name} has no description"


#-- References: what `terraform validate` would catch without providers --#


def _declared(tf) -> dict[str, set[str]]:
    resources = {f"{rtype}.{name}" for rtype, name, _, _ in tf.all_resources()}
    data = set()
    for parsed in tf.parsed.values():
        for entry in parsed.get("data", []):
            for rtype, named in entry.items():
                if not rtype.startswith("__"):
                    data |= {f"{rtype}.{name}" for name in named}
    return {"var": set(tf.variables), "local": set(tf.locals), "resource": resources, "data": data}


def test_every_reference_is_declared_and_every_variable_used(tf):
    declared = _declared(tf)
    text = "\n".join(re.sub(r"#.*", "", t) for t in tf.texts.values())
    used_vars = set(re.findall(r"\bvar\.([a-z0-9_]+)", text))
    assert used_vars <= declared["var"], f"undeclared: {used_vars - declared['var']}"
    assert declared["var"] <= used_vars, f"unused variables: {declared['var'] - used_vars}"
    used_locals = set(re.findall(r"\blocal\.([a-z0-9_]+)", text))
    assert used_locals <= declared["local"], f"undeclared: {used_locals - declared['local']}"
    for rtype, name in re.findall(r"(?<!data\.)\b(google(?:_[a-z0-9]+)+|terraform_data)\.([a-z0-9_]+)\b", text):
        if rtype in ("google", "google-beta"):
            continue
        assert f"{rtype}.{name}" in declared["resource"], f"undeclared resource {rtype}.{name}"
    for rtype, name in re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", text):
        assert f"{rtype}.{name}" in declared["data"], f"undeclared data {rtype}.{name}"


def test_firebase_resources_use_the_beta_provider(tf):
    for rtype, name, body, _ in tf.all_resources():
        if rtype.startswith("google_firebase_") and not rtype.startswith("google_firebaserules"):
            assert tf.ref(body.get("provider", "")) == "google-beta", f"{rtype}.{name}"


def test_readme_tables_list_every_input_and_output(tf, terraform_dir):
    readme = (terraform_dir / "README.md").read_text()
    begin = "<!-- BEGINNING OF PRE-COMMIT-TERRAFORM DOCS HOOK -->"
    end = "<!-- END OF PRE-COMMIT-TERRAFORM DOCS HOOK -->"
    assert begin in readme and end in readme
    tables = readme[readme.index(begin):readme.index(end)]
    for name in tf.variables:
        assert f"| {name} |" in tables, f"README inputs table lacks {name}"
    for name in tf.outputs:
        assert f"| {name} |" in tables, f"README outputs table lacks {name}"


#-- Accounts (issue 10) --#


def test_account_api_is_public_capped_and_holds_no_token_key(tf):
    account = tf.resources(FUNCTION_TYPE)["account"]
    service = tf.block(account["service_config"])
    assert service["ingress_settings"] == "ALLOW_ALL"  # Firebase Hosting comes from the internet
    assert service["min_instance_count"] == 0
    assert tf.ref(service["max_instance_count"]) == "var.account_max_instances"
    bindings = _iam_on(tf, "account")
    assert [(b["role"], b["member"]) for _, _, b in bindings] == [(RUN_INVOKER, "allUsers")]
    readable = {tf.ref(b["secret_id"]) for b in tf.resources("google_secret_manager_secret_iam_member").values()
                if sa_of(tf, b["member"]) == "account"}
    # The session key, and the log key for the user references of its log lines: nothing that
    # seals or opens a token.
    assert readable == {"google_secret_manager_secret.session_key.secret_id",
                        "google_secret_manager_secret.log_user_ref_key.secret_id"}
    env = service["environment_variables"]
    assert "local.function_environment" in env
    assert "google_cloudfunctions2_function.disconnect.service_config[0].uri" in env


def test_disconnect_function_is_invoked_by_the_account_api_and_the_risc_receiver_only(tf):
    disconnect = tf.resources(FUNCTION_TYPE)["disconnect"]
    service = tf.block(disconnect["service_config"])
    # Another Cloud Run service's call is not internal traffic: IAM is the gate (PLAN, README).
    assert service["ingress_settings"] == "ALLOW_ALL"
    bindings = _iam_on(tf, "disconnect")
    assert bindings, "run.invoker for the account API is missing"
    for rtype, name, body in bindings:
        members = body.get("members", [body.get("member")])
        assert body["role"] == RUN_INVOKER
        assert not PUBLIC_MEMBERS & set(members), f"{rtype}.{name} makes disconnect_user public"
    invokers = sorted(sa_of(tf, m) for _, _, body in bindings for m in body.get("members", [body.get("member")]))
    # The account API's Disconnect, and the RISC receiver's for a hijacked account.
    assert invokers == ["account", "risc"]
    comments = " ".join(tf.comments(disconnect))
    assert "CKV_GCP_124" in comments and "IAM" in comments


def test_first_deployment_keeps_the_job_paused_until_the_secrets_are_set(tf, terraform_dir):
    assert default_of(tf, "job_paused") is True
    job = tf.resources("google_cloud_scheduler_job")["offline_job"]
    assert tf.ref(job["paused"]) == "var.job_paused"
    makefile = (terraform_dir / "terraform.mk").read_text()
    assert "rotate-session-key" in makefile and "job_paused = false" in makefile


def test_session_settings_reach_the_functions(tf):
    env = tf.locals["function_environment"]
    assert re.fullmatch(
        r"\$\{google_secret_manager_secret\.session_key\.id\}/versions/\$\{var\.session_key_version\}",
        env["SESSION_KEY_VERSION"])
    assert tf.ref(env["SESSION_LIFETIME_SECONDS"]) == "tostring(var.session_lifetime_days * 86400)"
    assert tf.ref(env["JOB_SCHEDULE_PERIOD_SECONDS"]) == "tostring(local.job_schedule_period_seconds)"


def test_the_cli_env_output_carries_settings_and_no_secret(tf):
    output = tf.outputs["cli_env"]
    assert "local.function_environment" in output["value"]
    assert "LOG_EXECUTION_ID" in output["value"]  # left out: platform only
    assert "secret_data" not in str(output) and "sensitive" not in output


def test_branding_variables_are_validated(tf):
    for name in ("app_name", "brand_logo_url", "privacy_policy_url", "terms_url", "support_url"):
        assert tf.variables[name].get("validation"), f"variable {name} has no validation"
    assert default_of(tf, "privacy_policy_url") is None


#-- Cross-Account Protection (issue 13) --#


def _risc_resources(tf) -> list[tuple[str, str, dict]]:
    return [(rtype, name, body) for rtype, name, body, filename in tf.all_resources() if filename == "risc.tf"]


def test_cross_account_protection_is_off_by_default_and_all_of_it_behind_the_switch(tf):
    assert default_of(tf, "risc_enabled") is False
    assert tf.locals["risc_count"] == "${var.risc_enabled ? 1 : 0}"
    resources = _risc_resources(tf)
    assert len(resources) == 17
    for rtype, name, body in resources:
        switch = tf.ref(body.get("count", "")) if "count" in body else tf.ref(body.get("for_each", ""))
        # The worker's grant needs the fan-out too: `local.fanout ? local.risc_count : 0`.
        assert switch in ("local.risc_count", "local.fanout ? local.risc_count : 0") \
            or switch.startswith("var.risc_enabled ?"), f"{rtype}.{name}"
    # Outside risc.tf, the switch's resources are reached only through expressions that are
    # empty without them.
    env = tf.locals["function_environment"]["REFRESH_TOKEN_ID_KEY_VERSION"]
    assert env.startswith('${join("", [for secret in google_secret_manager_secret.refresh_token_id_key :')


def test_the_risc_api_is_enabled_and_one_account_may_register_the_stream(tf):
    assert tf.resources("google_project_service")["risc"]["service"] == "risc.googleapis.com"
    [grant] = [b for b in tf.resources("google_project_iam_member").values() if b["role"] == "roles/riscconfigs.admin"]
    assert sa_of(tf, grant["member"]) == "risc_admin"
    impersonation = tf.resources("google_service_account_iam_member")["risc_admin_impersonators"]
    assert impersonation["role"] == "roles/iam.serviceAccountTokenCreator"
    assert tf.ref(impersonation["member"]) == "each.value"
    assert "var.risc_admins" in impersonation["for_each"]
    assert tf.ref(impersonation["service_account_id"]) == "google_service_account.risc_admin[0].name"
    # No key file is made: operators impersonate the account.
    assert not tf.resources("google_service_account_key")


def test_the_risc_receiver_is_public_capped_and_holds_no_token_key(tf):
    receiver = tf.resources(FUNCTION_TYPE)["risc"]
    service = tf.block(receiver["service_config"])
    assert service["ingress_settings"] == "ALLOW_ALL"  # Google pushes from the internet
    assert service["min_instance_count"] == 0
    assert tf.ref(service["max_instance_count"]) == "var.risc_max_instances"
    assert 1 <= default_of(tf, "risc_max_instances") <= 10
    bindings = _iam_on(tf, "risc")
    assert [(b["role"], b["member"]) for _, _, b in bindings] == [(RUN_INVOKER, "allUsers")]
    readable = {tf.ref(b["secret_id"]) for b in tf.resources("google_secret_manager_secret_iam_member").values()
                if sa_of(tf, b["member"]) == "risc"}
    assert readable == {"google_secret_manager_secret.refresh_token_id_key[0].secret_id",
                        "google_secret_manager_secret.log_user_ref_key.secret_id"}
    env = service["environment_variables"]
    assert "local.function_environment" in env and "opening_environment" not in env
    assert "google_cloudfunctions2_function.disconnect.service_config[0].uri" in env
    assert "RISC_CLIENT_IDS" in env
    comments = " ".join(tf.comments(receiver))
    assert "CKV_GCP_124" in comments and "signed" in comments


def test_the_event_records_expire_by_a_ttl_policy_on_the_stores_field(tf):
    from offline_access.store import security_events

    ttl = tf.resources("google_firestore_field")["security_event_tokens_ttl"]
    assert tf.block(ttl["ttl_config"]) == {"__is_block__": True}
    assert ttl["field"] == security_events.TTL_FIELD
    assert tf.ref(ttl["collection"]) == "local.risc_events_collection"
    assert tf.locals["risc_events_collection"] == security_events.COLLECTION


#-- The token API and the lifecycle events (issue 11) --#


def test_token_api_is_invoked_by_the_app_backends_only_and_checks_them_itself(tf):
    token_api = tf.resources(FUNCTION_TYPE)["token_api"]
    service = tf.block(token_api["service_config"])
    # The app's backends are not internal traffic: IAM is the gate, as for disconnect_user.
    assert service["ingress_settings"] == "ALLOW_ALL"
    assert service["min_instance_count"] == 0
    assert tf.ref(service["max_instance_count"]) == "var.token_api_max_instances"
    bindings = _iam_on(tf, "token_api")
    assert [name for _, name, _ in bindings] == ["token_api_invokers"]
    [(_, _, invokers)] = bindings
    assert invokers["role"] == RUN_INVOKER
    assert invokers["for_each"] == "${toset(var.app_backend_service_accounts)}"
    assert invokers["member"] == "serviceAccount:${each.value}"
    assert default_of(tf, "app_backend_service_accounts") == []  # nobody until listed
    env = service["environment_variables"]
    # It opens tokens (the job's environment), and checks the same callers IAM admits, for
    # its own URLs (known before it exists: no cycle).
    assert "local.opening_environment" in env and "local.events_environment" in env
    assert 'TOKEN_API_ALLOWED_CALLERS = join(",", var.app_backend_service_accounts)' in env
    assert 'TOKEN_API_AUDIENCES = join(",", local.token_api_audiences)' in env
    audiences = tf.locals["token_api_audiences"]
    assert ".run.app" in audiences[0] and ".cloudfunctions.net/" in audiences[1]
    assert "google_cloudfunctions2_function.token_api" not in audiences
    comments = " ".join(tf.comments(token_api))
    assert "CKV_GCP_124" in comments and "IAM" in comments and "ID token" in comments
    assert "token_api_url" in tf.outputs


def test_events_topic_keeps_messages_and_only_the_changing_functions_publish(tf):
    topic = tf.resources("google_pubsub_topic")["events"]
    assert topic["message_retention_duration"] == "${var.events_retention_days * 86400}s"
    assert default_of(tf, "events_retention_days") == 7
    publishers = tf.resources("google_pubsub_topic_iam_member")["events_publishers"]
    assert publishers["role"] == "roles/pubsub.publisher"
    assert tf.ref(publishers["topic"]) == "google_pubsub_topic.events.name"
    listed = tf.locals["events_publishers"]
    named = set(re.findall(r"google_service_account\.(\w+)", listed))
    # The functions that change users publish (the worker and the receiver when they exist);
    # the account API (it only marks a disconnect, which disconnect_user or the job completes
    # and announces) does not.
    assert named == {"exchange", "job", "disconnect", "token_api", "worker", "risc"}
    for optional in ("worker", "risc"):
        assert f'for sa in google_service_account.{optional} : "{optional}" => sa.email' in listed
    subscribers = tf.resources("google_pubsub_topic_iam_member")["events_subscribers"]
    assert subscribers["role"] == "roles/pubsub.subscriber"
    assert subscribers["for_each"] == "${toset(var.events_subscribers)}"
    on_events = {name for name, body in tf.resources("google_pubsub_topic_iam_member").items()
                 if tf.ref(body["topic"]) == "google_pubsub_topic.events.name"}
    assert on_events == {"events_publishers", "events_subscribers"}
    for rtype in ("google_pubsub_topic_iam_binding", "google_pubsub_topic_iam_policy"):
        assert not tf.resources(rtype), f"use *_iam_member, not {rtype}"
    functions = tf.resources(FUNCTION_TYPE)
    for name in ("exchange", "token_api", "risc"):
        assert "local.events_environment" in tf.block(functions[name]["service_config"])["environment_variables"]
    assert "local.events_environment" in tf.locals["opening_environment"]  # job, disconnect, worker
    assert "events_environment" not in tf.block(functions["account"]["service_config"])["environment_variables"]
    assert "events_topic" in tf.outputs
