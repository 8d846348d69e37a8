"""Pub/Sub as the job's fan-out uses it: publishing work, and push deliveries as they arrive."""
