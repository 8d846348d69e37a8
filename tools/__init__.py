"""Developer tools of this repository: they run checks and never ship with the deployment."""
