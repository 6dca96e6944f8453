"""Adapter: the HTTP gateway (Caddy). The brain sees only `base.Gateway`."""
