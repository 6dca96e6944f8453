"""The brain: session state, policy and lifecycle. Sees Docker and Caddy only through protocols."""
