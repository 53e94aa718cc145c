"""Ways to delete project A: a GCP project, a webhook, or none."""
