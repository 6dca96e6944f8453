"""Adapter: the container runtime (Docker). The brain sees only `base.Runtime`."""
