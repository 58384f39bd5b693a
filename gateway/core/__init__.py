"""Shared vocabulary: domain records, immutable record classes, typed errors and payload
validators. Imports nothing above it."""
