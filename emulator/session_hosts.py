"""Sessions on hosts of their own: where each session is served, apart from the portal and from each other.

A browser keeps cookies, storage and script access per host: a page in one session (anything its owner
serves there) is then another site to the portal, the API and every other session, so it can neither read
them nor act in them as its visitor. CANFAR serves sessions from a host other than the portal's too.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class SessionHosts:
    """Every session served at a host of its own, `<id>.<domain>`, with the portal's scheme and port: a page in
    one session is another site to the portal and to every other session (README, "Security model")."""

    domain: str  # e.g. "localhost" (browsers send *.localhost to loopback) or an operator's wildcard name
    scheme: str = "http"
    port: int | None = None  # in URLs; None: the scheme's own

    def origin(self, session_id: str) -> str:
        return f"{self.scheme}://{session_id}.{self.domain}" + (f":{self.port}" if self.port else "")

    @property
    def id_label(self) -> int:
        """Which of the host's labels, counted from the right as Caddy counts them, is the session id."""
        return self.domain.count(".") + 1

    @property
    def id_placeholder(self) -> str:
        """Caddy's placeholder for the session id a request's host names."""
        return f"{{http.request.host.labels.{self.id_label}}}"


def for_scripts(url: str, base_url: str) -> str:
    """`url` as a script on this machine can open it: a session's `<id>.localhost` host (which browsers send to
    loopback but the system's resolver may not know) becomes the portal's, which serves scripts by path."""
    parts = urlsplit(url)
    if not (parts.hostname or "").endswith(".localhost"):
        return url
    base = urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))
