"""Admission control: rate limits, sessions per IP (per node, shared across workers or the cluster), drain gate."""
