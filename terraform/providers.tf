#-- Providers --#

# The Firebase and Service Usage APIs refuse end-user credentials (gcloud auth
# application-default login) without a quota project, so every call is billed
# to the deployment's own project.
provider "google" {
  project               = var.project_id
  region                = var.region
  user_project_override = true
  billing_project       = var.project_id
}

provider "google-beta" {
  project               = var.project_id
  region                = var.region
  user_project_override = true
  billing_project       = var.project_id
}
