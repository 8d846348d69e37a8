# A project that already has Firebase, a native-mode Firestore database whose rules are
# managed elsewhere, and gen2 functions in this region (so Cloud Functions' staging bucket
# exists): every create_*/manage_* switch off. The offline plan of `make test` plans it too.

project_id      = "my-project-id"
oauth_client_id = "123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com"

region = "us-east1"

create_firebase_project   = false
create_firestore_database = false
create_gcf_sources_bucket = false
manage_firestore_rules    = false
