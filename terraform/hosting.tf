#-- Firebase Hosting site --#

# The page needs an origin of its own: that origin becomes an Authorized
# JavaScript origin of the OAuth client, and a shared one (such as
# storage.googleapis.com) would let any other page there use our client ID.
# A Firebase Hosting site gives SITE_ID.web.app, and rewrites /api/exchange to
# the exchange function and the rest of /api/** to the account API, on the
# same origin.

resource "google_firebase_project" "default" {
  provider = google-beta
  count    = var.create_firebase_project ? 1 : 0

  project = var.project_id

  depends_on = [google_project_service.enabled]
}

resource "google_firebase_hosting_site" "page" {
  provider = google-beta

  project = var.project_id
  site_id = local.hosting_site_id

  depends_on = [google_firebase_project.default, google_project_service.enabled]
}

resource "google_firebase_hosting_custom_domain" "page" {
  provider = google-beta
  count    = var.custom_domain == null ? 0 : 1

  project       = var.project_id
  site_id       = google_firebase_hosting_site.page.site_id
  custom_domain = var.custom_domain

  # The DNS records are the user's to create (output custom_domain_dns_records).
  wait_dns_verification = false
}

#-- Page configuration --#

locals {
  static_site_dir = abspath("${path.module}/../static_site")

  # window.APP_CONFIG of the page (static_site/config.js; the keys app.js reads,
  # as localdev/site_config.py writes them for `make dev`). The exchange URL and
  # the account API are paths: the page calls its own origin. The branding keys
  # name the app and link its policies, as the OAuth consent screen does.
  page_config = {
    clientId         = var.oauth_client_id
    exchangeUrl      = local.exchange_path
    accountApiUrl    = local.account_api_path
    scopes           = join(" ", var.oauth_scopes)
    gisScriptUrl     = "https://accounts.google.com/gsi/client"
    appName          = var.app_name
    logoUrl          = var.brand_logo_url
    privacyPolicyUrl = var.privacy_policy_url == null ? "" : var.privacy_policy_url
    termsUrl         = var.terms_url == null ? "" : var.terms_url
    supportUrl       = var.support_url == null ? "" : var.support_url
  }
  config_js = templatefile("${path.module}/templates/config.js.tftpl", { config = local.page_config })

  # The same policy localdev/site_config.py serves in `make dev` (a test keeps
  # them equal): 'self' for the page and its /api/exchange call, Google's
  # sign-in origin for the GIS script, its iframe and styles, and profile
  # pictures from googleusercontent.com. No inline script or style.
  # https://developers.google.com/identity/gsi/web/guides/get-google-api-clientid#content_security_policy
  content_security_policy = join("; ", [
    "default-src 'self'",
    "script-src 'self' https://accounts.google.com",
    "connect-src 'self' https://accounts.google.com",
    "frame-src https://accounts.google.com",
    "img-src 'self' data: https://accounts.google.com https://*.googleusercontent.com",
    "style-src 'self' https://accounts.google.com",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ])

  security_headers = {
    "Content-Security-Policy" = local.content_security_policy
    "X-Content-Type-Options"  = "nosniff"
    "Referrer-Policy"         = "strict-origin-when-cross-origin"
    # The GIS popup must be able to post the code back to its opener.
    "Cross-Origin-Opener-Policy" = "same-origin-allow-popups"
    "X-Frame-Options"            = "DENY"
  }

  # Firebase Hosting ServingConfig (REST field names), published with the files.
  # https://firebase.google.com/docs/reference/hosting/rest/v1beta1/sites.versions#servingconfig
  # The first matching rewrite wins: the exchange, then the account API.
  hosting_config = {
    rewrites = [
      {
        glob = local.exchange_path
        # A gen2 function is a Cloud Run service of the same name.
        run = {
          serviceId = google_cloudfunctions2_function.exchange.name
          region    = var.region
        }
      },
      {
        glob = "${local.account_api_path}/**"
        run = {
          serviceId = google_cloudfunctions2_function.account.name
          region    = var.region
        }
      },
    ]
    headers = [
      { glob = "**", headers = local.security_headers },
      # Revalidate the page and its config on every load, so a deployment
      # takes effect at once.
      { glob = "/", headers = { "Cache-Control" = "no-cache" } },
      { glob = "**/*.@(html|js|css)", headers = { "Cache-Control" = "no-cache" } },
    ]
  }
  hosting_config_json = jsonencode(local.hosting_config)

  # The files publish_site.py publishes (same exclusions): a change to any of
  # them republishes the page. A local config.js (written by `make dev`) is
  # replaced by the generated one.
  static_site_files = sort([
    for f in fileset(local.static_site_dir, "**") : f
    if f != "config.js" && !endswith(lower(f), ".md") && length(regexall("(^|/)(\\.|__pycache__/)", f)) == 0
  ])
  static_site_digest = sha256(join("\n", [
    for f in local.static_site_files : "${f} ${filesha256("${local.static_site_dir}/${f}")}"
  ]))
}

#-- Publishing --#

# No provider resource uploads Hosting files (google_firebase_hosting_version
# carries configuration only and finalizes at once), so a small script does
# what `firebase deploy` does: create a version with the configuration above,
# populateFiles with gzip SHA-256 hashes, upload the missing files, finalize,
# release. It authenticates with the same Application Default Credentials as
# Terraform and needs only the Python standard library.
resource "terraform_data" "publish_site" {
  triggers_replace = {
    site           = local.hosting_site_id
    files          = local.static_site_digest
    config_js      = sha256(local.config_js)
    hosting_config = sha256(local.hosting_config_json)
    script         = filesha256("${path.module}/scripts/publish_site.py")
  }

  provisioner "local-exec" {
    interpreter = ["python3"]
    command     = abspath("${path.module}/scripts/publish_site.py")
    environment = {
      PUBLISH_PROJECT        = var.project_id
      PUBLISH_SITE           = local.hosting_site_id
      PUBLISH_SOURCE_DIR     = local.static_site_dir
      PUBLISH_CONFIG_JS      = local.config_js
      PUBLISH_HOSTING_CONFIG = local.hosting_config_json
      PUBLISH_MESSAGE        = "terraform apply (${local.prefix})"
    }
  }

  # Hosting rejects a rewrite to a Cloud Run service that does not exist yet.
  depends_on = [
    google_firebase_hosting_site.page,
    google_cloudfunctions2_function.exchange,
    google_cloud_run_service_iam_member.exchange_public,
    google_cloudfunctions2_function.account,
    google_cloud_run_service_iam_member.account_public,
  ]
}
