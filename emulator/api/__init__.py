"""The HTTP face: skaha's REST API under /skaha/v0 and /skaha/v1."""
