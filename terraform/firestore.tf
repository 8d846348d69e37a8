#-- Firestore database --#

resource "google_firestore_database" "default" {
  count = var.create_firestore_database ? 1 : 0

  project                     = var.project_id
  name                        = local.firestore_database
  location_id                 = local.firestore_location
  type                        = "FIRESTORE_NATIVE"
  app_engine_integration_mode = "DISABLED"
  deletion_policy             = var.firestore_deletion_policy

  depends_on = [google_project_service.enabled]
}

#-- Indexes --#

# The scheduled job's query: users with status == "active" and
# next_run_at <= now, ordered by next_run_at, paged by document name
# (docs/design.md, Firestore user document).
resource "google_firestore_index" "users_due" {
  project     = var.project_id
  database    = local.firestore_database
  collection  = var.users_collection
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "next_run_at"
    order      = "ASCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }

  depends_on = [google_firestore_database.default]
}

# The sealed tokens' ciphertexts (over 1 KB each with the post-quantum key
# exchange) are never queried: no single-field index on them, which keeps each
# write small. Their `v` and `key_id` stay indexed: the key operations count
# tokens per key with them.
resource "google_firestore_field" "sealed_ciphertexts_unindexed" {
  for_each = toset(["refresh_token.ct", "access_token.ct"])

  project    = var.project_id
  database   = local.firestore_database
  collection = var.users_collection
  field      = each.value

  index_config {}

  depends_on = [google_firestore_database.default]
}

#-- Security rules --#

# Firebase is enabled on the project for Hosting, which also exposes Firestore
# to client SDKs. No client reads or writes anything: the functions use IAM,
# which rules do not govern.
resource "google_firebaserules_ruleset" "firestore_deny_clients" {
  count = var.manage_firestore_rules ? 1 : 0

  project = var.project_id

  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/templates/firestore.rules")
    }
  }

  depends_on = [google_project_service.enabled, google_firestore_database.default]
}

resource "google_firebaserules_release" "firestore" {
  count = var.manage_firestore_rules ? 1 : 0

  project      = var.project_id
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore_deny_clients[0].name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore_deny_clients[0]]
  }
}
