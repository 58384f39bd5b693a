"""Credentials and keys: agent tokens, signed visitor tokens, identity hashes, the master-key check."""
