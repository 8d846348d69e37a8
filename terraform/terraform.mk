#-- Terraform deployment (terraform/README.md) --#
#
# Included by the top-level Makefile (`include terraform/terraform.mk`); paths are
# relative to the repository root. Its variables start with TF_ (plus CHECKOV, the
# name the top-level Makefile uses) and can be overridden on the command line,
# e.g. `make deploy TF_VARS=prod.tfvars`.

TF_BIN             ?= terraform
TF_DIR             ?= terraform
TF_VARS            ?= $(TF_DIR)/terraform.tfvars
TF_APPLY_ARGS      ?=
TF_PY              ?= .venv/bin/python
# What provides $(TF_PY): the top-level Makefile's install stamp, when it has one.
TF_PY_DEPS         ?= $(STAMP)
TF_CHECKOV_VENV    ?= .venv-checkov
TF_CHECKOV         ?= $(TF_CHECKOV_VENV)/bin/checkov
TF_CHECKOV_REQS    ?= $(TF_DIR)/requirements-checkov.txt
CHECKOV            ?= $(TF_CHECKOV)
# Targets whose recipes need bash (read -s), whatever SHELL the including Makefile sets.
TF_BASH_TARGETS    := set-client-secret
TF_OUTPUT          = $(TF_BIN) -chdir=$(TF_DIR) output -raw
TF_NEED_DEPLOYMENT = { echo "No deployment outputs found: run make deploy first." >&2; exit 1; }
# The key operations (offline_access/store/sealing_keys.py) read the deployment's secret names
# from its outputs, with Application Default Credentials; with DEV=1, `make dev`'s stack.
TF_KEYS_ENV_CMD    ?= $(if $(DEV),cat .dev-logs/key-operations.env,$(TF_OUTPUT) key_operations_env)
TF_KEYS            = keys_env="$$($(TF_KEYS_ENV_CMD) 2>/dev/null)" && [ -n "$$keys_env" ] || $(TF_NEED_DEPLOYMENT); \
	env $$keys_env PYTHONPATH=functions $(TF_PY) -m offline_access.store.sealing_keys

# Create or update the whole deployment: terraform init, then apply with terraform/terraform.tfvars
# (TF_VARS=FILE for another file).
#
# The page is published by terraform/scripts/publish_site.py (python3, standard library only);
# the project's virtualenv, when present, goes first on PATH to lend it google-auth.
.PHONY: deploy
deploy:
	@test -f "$(TF_VARS)" || { echo "Missing $(TF_VARS): copy $(TF_DIR)/terraform.tfvars.example and fill it in." >&2; exit 1; }
	$(TF_BIN) -chdir=$(TF_DIR) init -input=false
	if [ -x .venv/bin/python3 ]; then PATH="$(CURDIR)/.venv/bin:$$PATH"; fi; \
	$(TF_BIN) -chdir=$(TF_DIR) apply -input=false -var-file="$(abspath $(TF_VARS))" $(TF_APPLY_ARGS)
	@echo
	@echo "Register this origin in the OAuth client's Authorized JavaScript origins:"
	@echo "  $$($(TF_OUTPUT) oauth_javascript_origin)"
	@echo "Sign-in page: $$($(TF_OUTPUT) page_url)"
	@if [ "$$($(TF_OUTPUT) job_paused 2>/dev/null)" = "true" ]; then \
	  echo "The scheduled job is paused (job_paused = true). First deployment? Run"; \
	  echo "  make set-client-secret && make rotate-sealing-key && make rotate-log-key && make rotate-session-key"; \
	  echo "then set job_paused = false in $(TF_VARS) and run make deploy again."; \
	fi
	@if [ -n "$$($(TF_OUTPUT) risc_receiver_url 2>/dev/null)" ]; then \
	  echo "Cross-Account Protection is deployed. Once: make create-token-id-key, then"; \
	  echo "  terraform -chdir=$(TF_DIR) output -raw cli_env > deploy.env"; \
	  echo "  .venv/bin/offline-access --env-file deploy.env risc register && .venv/bin/offline-access --env-file deploy.env risc verify"; \
	fi
	@unpinned="$$($(TF_OUTPUT) unpinned_secret_versions 2>/dev/null)"; \
	if [ -n "$$unpinned" ]; then \
	  { echo; \
	    set -- $$unpinned; [ $$# -eq 1 ] && verb=is || verb=are; \
	    echo "WARNING: $$(echo $$unpinned | sed 's/ / and /') $$verb still \"latest\"."; \
	    echo "  Each new function instance then reads whichever version was added last: a wrong or premature"; \
	    echo "  version reaches production unannounced, and only disabling it rolls it back."; \
	    echo "  Once the secrets have versions, pin them in $(TF_VARS) (the numbers that"; \
	    echo "  make set-client-secret and make rotate-sealing-key printed, or"; \
	    echo "  gcloud secrets versions list SECRET_ID), e.g."; \
	    for name in $$unpinned; do echo "    $$name = \"1\""; done; \
	    echo "  and run make deploy again (terraform/README.md, step 8)."; } >&2; \
	fi

# Delete the deployment (the Firestore database stays unless firestore_deletion_policy = "DELETE").
.PHONY: destroy
destroy:
	@test -f "$(TF_VARS)" || { echo "Missing $(TF_VARS)." >&2; exit 1; }
	$(TF_BIN) -chdir=$(TF_DIR) init -input=false
	$(TF_BIN) -chdir=$(TF_DIR) destroy -input=false -var-file="$(abspath $(TF_VARS))" $(TF_APPLY_ARGS)

# Add a version of the OAuth client secret, typed at a hidden prompt: it never enters tfvars, state or argv.
.PHONY: set-client-secret
$(TF_BASH_TARGETS): SHELL := /usr/bin/env bash
set-client-secret:
	@project="$$($(TF_OUTPUT) project_id 2>/dev/null)" && secret="$$($(TF_OUTPUT) oauth_client_secret_id 2>/dev/null)" || $(TF_NEED_DEPLOYMENT); \
	IFS= read -r -s -p "OAuth client secret for $$secret (input hidden): " value; echo >&2; \
	[ -n "$$value" ] || { echo "Empty input: no version added." >&2; exit 1; }; \
	printf '%s' "$$value" | gcloud secrets versions add "$$secret" --project="$$project" --data-file=- --format='value(name)' || exit 1; \
	unset value; \
	echo "Added. With oauth_client_secret_version = \"latest\" new function instances use it;"; \
	echo "if you pin versions, set oauth_client_secret_version to the number above and run make deploy."

# Add a new primary token-sealing key pair (generated with Python's cryptography): private half, then public.
.PHONY: rotate-sealing-key
rotate-sealing-key: $(TF_PY_DEPS)
	@$(TF_KEYS) rotate $(if $(SUITE),--suite $(SUITE))

# Show each sealing key and how many stored tokens it still opens.
.PHONY: sealing-key-status
sealing-key-status: $(TF_PY_DEPS)
	@$(TF_KEYS) status

# Retire a sealing key (KEY=N or KEY=aes-N; DESTROY=1 destroys): refused while tokens in use need it.
.PHONY: retire-sealing-key
retire-sealing-key: $(TF_PY_DEPS)
	@[ -n "$(KEY)" ] || { echo "Name the key: make retire-sealing-key KEY=N (see make sealing-key-status)." >&2; exit 1; }
	@$(TF_KEYS) retire "$(KEY)" $(if $(DESTROY),--destroy)

# Add a version of the logs' user-reference key (32 random bytes); users' log references change with it.
.PHONY: rotate-log-key
rotate-log-key: $(TF_PY_DEPS)
	@$(TF_KEYS) add-log-key

# Create the key of the refresh-token identifiers that Cross-Account Protection matches (risc_enabled), once; REPLACE=1 adds a new version anyway.
.PHONY: create-token-id-key
create-token-id-key: $(TF_PY_DEPS)
	@$(TF_KEYS) add-token-id-key $(if $(REPLACE),--replace)

# Create the session-cookie key, or rotate it: add a version of 32 random bytes (base64); sessions sealed by older enabled versions stay valid.
.PHONY: rotate-session-key
rotate-session-key:
	@project="$$($(TF_OUTPUT) project_id 2>/dev/null)" && secret="$$($(TF_OUTPUT) session_key_secret_id 2>/dev/null)" || $(TF_NEED_DEPLOYMENT); \
	key="$$(python3 -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode(),end="")')" \
	  && [ "$${#key}" -eq 44 ] || { echo "Could not generate a key with python3." >&2; exit 1; }; \
	printf '%s' "$$key" | gcloud secrets versions add "$$secret" --project="$$project" --data-file=- --format='value(name)' || exit 1; \
	unset key; \
	echo "Added. New sessions use it once instances restart (session_key_version = \"latest\")"; \
	echo "or once session_key_version is set to the number above and make deploy has run."; \
	echo "Disabling an older version signs out the sessions it sealed."

# Check Terraform formatting, then terraform init and validate offline (schema-only providers, tools/tf_offline_plan).
.PHONY: lint-tf
lint-tf: $(TF_PY_DEPS)
	@if ! command -v $(TF_BIN) >/dev/null 2>&1; then \
	  echo "lint-tf: $(TF_BIN) is not installed: fmt and validate skipped (make test-tf still checks the configuration with python-hcl2 and checkov)."; \
	  exit 0; \
	fi; \
	$(TF_BIN) fmt -check -recursive -diff $(TF_DIR) || { echo "lint-tf: run $(TF_BIN) fmt -recursive $(TF_DIR)" >&2; exit 1; }; \
	echo "lint-tf: terraform fmt -check passed."; \
	$(TF_PY) -m tools.tf_offline_plan --validate-only --terraform "$$(command -v $(TF_BIN))" $(TF_DIR)

# Build the offline Terraform check's cache once (provider virtualenv from PyPI, schemas from npm), when terraform is installed.
.PHONY: tf-offline-cache
tf-offline-cache: $(TF_PY_DEPS)
	@if command -v $(TF_BIN) >/dev/null 2>&1; then \
	  $(TF_PY) -m tools.tf_offline_plan --build-cache --terraform "$$(command -v $(TF_BIN))"; \
	else \
	  echo "tf-offline-cache: $(TF_BIN) is not installed: the offline terraform validate/plan check will be skipped (everything else runs)."; \
	fi

# Run the checks of the Terraform configuration: offline terraform validate and plan, python-hcl2 invariants, the publish script, checkov.
.PHONY: test-tf
test-tf: $(TF_CHECKOV) $(TF_PY_DEPS) tf-offline-cache
	@test -x "$(TF_PY)" || { echo "$(TF_PY) not found: create the project virtualenv first." >&2; exit 1; }
	$(TF_PY) -m pytest tests/terraform -q -p no:cacheprovider

# checkov lives in its own virtualenv: it pins many packages, and its hcl2 module clashes with python-hcl2.
$(TF_CHECKOV): $(TF_CHECKOV_REQS)
	python3 -m venv $(TF_CHECKOV_VENV)
	$(TF_CHECKOV_VENV)/bin/pip install --quiet --quiet --disable-pip-version-check -r $(TF_CHECKOV_REQS)
	@touch $@
