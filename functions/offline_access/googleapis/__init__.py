"""Google's HTTP endpoints as both flows call them: where they are, one pooled session, and the
token endpoint's grants with their errors classified."""
