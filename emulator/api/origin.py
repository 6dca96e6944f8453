"""The portal and the API answer their own pages, and scripts; never another site's page.

A browser says where a request comes from (fetch metadata: Sec-Fetch-Site, -Mode, -Dest) on every
request to a trustworthy origin, and Origin on every cross-origin POST. A page on another site (a
session's own host, a neighbour on another port) may still link here: a top-level GET navigation is
let through, as any link is. Everything else it makes a browser send (a form post, a fetch, an image,
a frame) is refused before a handler runs, signed in or not. Scripts send none of these headers.

/auth/* are the gateway's questions: they carry the browser's headers of a session's request, which
are the session's business, not the portal's.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OWN = {b"same-origin", b"none"}  # "none": typed in the address bar, a bookmark
GATEWAY_QUESTIONS = "/auth/"
REFUSED = "skaha-emulator: only this site's own pages may send this (the request came from another site's page)\n"


def from_elsewhere(method: str, headers: dict[bytes, bytes], any_origin_header: bool = False) -> bool:
    """Whether a browser sent this for a page of another origin (anything but following a link is refused).
    `any_origin_header`: an Origin naming another origin is refused on any method (a session's host, where a
    WebSocket or a simple GET from another session's page carries one)."""
    site = headers.get(b"sec-fetch-site")
    if site is not None and site not in OWN:
        navigating = headers.get(b"sec-fetch-mode") == b"navigate" and headers.get(b"sec-fetch-dest") == b"document"
        if not (navigating and method in SAFE_METHODS):
            return True
    origin = headers.get(b"origin")
    if origin is not None and (any_origin_header or method not in SAFE_METHODS):
        # Browsers that send no fetch metadata (plain HTTP to a LAN address) still name the posting page's origin.
        try:
            return origin == b"null" or urlsplit(origin.decode("latin-1")).netloc.encode() != headers.get(b"host", b"")
        except ValueError:  # not a URL at all
            return True
    return False


class OwnPagesOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = scope["type"] == "http" and not scope["path"].startswith(GATEWAY_QUESTIONS)
        if asked and from_elsewhere(scope["method"], dict(scope["headers"])):
            await PlainTextResponse(REFUSED, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)
