"""EmulatorClient: the CLI's only way into the service, over skaha's own HTTP API.

It finds the URL (EMULATE_URL, else what `emulate up` recorded for the instance; an instance
that is not up is an error, never some other instance's port) and the token (EMULATE_TOKEN,
else the users file), and maps HTTP error answers back to the EmulatorError classes. It imports
neither the Docker SDK nor the service's code, and speaks HTTP with the standard library's client:
one local request needs no more, and `emulate ps` then starts in a fraction of httpx's import time
(benchmarks/cli.py measures it against `docker ps`).
"""

from __future__ import annotations

import http.client
import json
import os
import select
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from emulator.client.discovery import recorded_url, tls_verify
from emulator.errors import Forbidden, NotFound, Unavailable, error_for_status
from emulator.layout import Layout
from emulator.users.tokens import admin_token, token_for

if TYPE_CHECKING:
    from email.message import Message

UNENFORCED_LIMITS = "x-emulator-limits-not-enforced"  # the service's headers (emulator/api/skaha.py)
RAM_COUNTS_CACHE = "x-emulator-ram-includes-cache"
TIMEOUT = 30.0  # seconds for one request
SNAPSHOT_TIMEOUT = 900.0  # saving a session copies what it wrote: gigabytes take minutes


def instance_url(layout: Layout) -> str:
    """Where the instance answers: EMULATE_URL, else what `up` (or `serve`) recorded."""
    url = os.environ.get("EMULATE_URL") or recorded_url(layout)
    if url is None:
        flag = "" if layout.instance == "default" else f" --instance {layout.instance}"
        raise Unavailable(
            f"instance '{layout.instance}' is not up; start it with `emulate{flag} up` "
            "(or set EMULATE_URL to reach an emulator elsewhere)"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    reason: str
    body: bytes
    headers: Message = field(repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One kept-alive connection to the service; a request the server's closing cut off is sent again once
    when it may be (the gateway closes idle connections whenever its routes change)."""

    def __init__(self, base_url: str, headers: dict[str, str], verify: str | bool, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._headers = headers
        self._verify = verify
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        if not self._https:
            return http.client.HTTPConnection(self._netloc, timeout=self._timeout)
        import ssl  # only HTTPS pays for loading a CA bundle

        context = ssl.create_default_context(cafile=self._verify if isinstance(self._verify, str) else None)
        if self._verify is False:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return http.client.HTTPSConnection(self._netloc, timeout=self._timeout, context=context)

    def _reusable(self) -> http.client.HTTPConnection:
        """The kept connection, unless the server has closed it while it sat idle (an idle socket that reads as
        ready holds the server's close, or something unasked): then a new one, as httpx's pool checks before a
        reuse. A request that cannot be sent twice then never meets a connection known to be gone."""
        kept = self._connection
        if kept is not None and kept.sock is not None and select.select([kept.sock], [], [], 0)[0]:
            self.close()
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], *, idempotent: bool
    ) -> Answer:
        for attempt in (1, 2):
            connection = self._reusable()
            try:
                connection.request(method, self._prefix + path, body=body, headers={**self._headers, **headers})
                response = connection.getresponse()
                return Answer(response.status, response.reason, response.read(), response.headers)
            except (http.client.RemoteDisconnected, BrokenPipeError):  # closed before any answer: not served
                self.close()
                if attempt == 2 or not idempotent:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _query(params: dict[str, Any] | None) -> str:
    return f"?{urlencode(params, doseq=True)}" if params else ""


class EmulatorClient:
    def __init__(
        self,
        layout: Layout,
        user: str | None = None,
        api_version: str = "v0",
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        """`url` and `token` name an emulator explicitly (the test kit's attached mode); else they are found."""
        self.base_url = url.rstrip("/") if url else instance_url(layout)
        token = token or os.environ.get("EMULATE_TOKEN") or token_for(layout.users_file, user)
        self.api = f"{self.base_url}/skaha/{api_version}"
        self.auth_headers = {"Authorization": f"Bearer {token}"}  # also opens the user's session routes
        self.verify = tls_verify(layout, self.base_url.startswith("https:"))
        self._http = Connection(self.api, self.auth_headers, self.verify)

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """One request; `timeout`: a longer wait than TIMEOUT, on a connection of its own."""
        sent = dict(headers or {})
        body = None
        if data is not None:
            body = urlencode(data, doseq=True).encode()  # a list value: repeated fields (env=...)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            # Ids come from the command line: a space or a non-ASCII letter is sent percent-encoded, as httpx did
            where = f"{quote(path, safe='/')}{_query(params)}"
            connection = (
                self._http if timeout is None else Connection(self.api, self.auth_headers, self.verify, timeout)
            )
            try:
                answer = connection.request(method, where, body, sent, idempotent=idempotent)
            finally:
                if connection is not self._http:
                    connection.close()
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(
                f"cannot reach the emulator at {self.base_url} ({exc.__class__.__name__}); "
                "is it running? start it with `emulate up`"
            ) from exc
        if answer.status >= 400:
            raise error_for_status(answer.status, answer.text.strip() or answer.reason)
        return answer

    def launch(self, registry_auth: str | None = None, **params: Any) -> str:
        """Launch; `registry_auth` is skaha's x-skaha-registry-auth header (base64 of user:secret)."""
        data: dict[str, Any] = {k: str(v) for k, v in params.items() if v is not None and not isinstance(v, list)}
        for key, values in params.items():
            if isinstance(values, list) and values:
                data[key] = [str(v) for v in values]  # repeated fields: env=..., mount=...
        headers = {"x-skaha-registry-auth": registry_auth} if registry_auth else None
        return self._request("POST", "/session", data=data, headers=headers, idempotent=False).text.strip()

    def attach_app(self, desktop_id: str, image: str) -> str:
        """Attach a desktop-app to a desktop (skaha's POST /session/<id>/app); answers the app's id."""
        return self._request("POST", f"/session/{desktop_id}/app", data={"image": image}, idempotent=False).text.strip()

    def app(self, desktop_id: str, app_id: str) -> dict[str, Any]:
        return self._request("GET", f"/session/{desktop_id}/app/{app_id}").json()  # type: ignore[no-any-return]

    def delete_app(self, desktop_id: str, app_id: str) -> None:
        self._request("DELETE", f"/session/{desktop_id}/app/{app_id}")

    def sessions(self, **filters: str) -> list[dict[str, Any]]:
        return self.sessions_and_limits(**filters)[0]

    def sessions_and_limits(self, **filters: str) -> tuple[list[dict[str, Any]], list[str], bool]:
        """The sessions, the limits the engine does not enforce on them, and whether their RAM in use counts the
        page cache (the emulator's own headers; a real skaha sends none)."""
        response = self._request("GET", "/session", params=filters)
        unenforced = [name.strip() for name in response.headers.get(UNENFORCED_LIMITS, "").split(",") if name.strip()]
        return response.json(), unenforced, response.headers.get(RAM_COUNTS_CACHE) == "true"

    def stats(self) -> dict[str, Any]:
        return self._request("GET", "/session", params={"view": "stats"}).json()  # type: ignore[no-any-return]

    def usage(self, since: str | None = None, as_csv: bool = False) -> Any:
        """What ended sessions used, per user and type (the admin API, under /skaha/v1: a client made with
        api_version="v1" and an admin's token): its JSON document, or with `as_csv` its CSV text."""
        params = {"since": since} if since else {}
        answer = self._request("GET", "/admin/usage", params={**params, **({"format": "csv"} if as_csv else {})})
        return answer.text if as_csv else answer.json()

    def session(self, session_id: str) -> dict[str, Any]:
        return self._request("GET", f"/session/{session_id}").json()  # type: ignore[no-any-return]

    def logs(self, session_id: str) -> str:
        return self._request("GET", f"/session/{session_id}", params={"view": "logs"}).text

    def pull_progress(self, session_id: str) -> dict[str, Any]:
        """How far the image pull a Pending session waits for has come ({} when none runs)."""
        found = self._request("GET", f"/session/{session_id}", params={"view": "pull"}).json()
        return found if isinstance(found, dict) and "layers" in found else {}  # a real skaha has no view=pull

    def events(self, session_id: str) -> str:
        return self._request("GET", f"/session/{session_id}", params={"view": "events"}).text

    def renew(self, session_id: str) -> None:
        self._request("POST", f"/session/{session_id}", data={"action": "renew"})

    def snapshot(self, session_id: str, tag: str | None = None) -> str:
        """Save a Running session as an image (the emulator's own action=snapshot); the image's name."""
        data = {"action": "snapshot", **({"tag": tag} if tag else {})}
        where = f"/session/{session_id}"
        return self._request("POST", where, data=data, idempotent=False, timeout=SNAPSHOT_TIMEOUT).text.strip()

    def delete(self, session_id: str) -> None:
        try:
            self._request("DELETE", f"/session/{session_id}")
        except NotFound as exc:  # skaha's body is the bare id; people get a sentence
            raise NotFound(f"no session {session_id}") from exc
        except Forbidden as exc:
            raise Forbidden(f"session {session_id} belongs to another user") from exc

    def broadcast(self) -> dict[str, Any] | None:
        """The admins' message to the room (the emulator's own, under v1): text, setBy, setAt; None when none."""
        answer = self._request("GET", "/broadcast")
        return None if answer.status == 204 else answer.json()

    def set_broadcast(self, text: str) -> dict[str, Any]:
        """Show `text` on every dashboard (an admin's token only); the message as the service keeps it."""
        return self._request("PUT", "/admin/broadcast", data={"text": text}).json()  # type: ignore[no-any-return]

    def clear_broadcast(self) -> bool:
        """Take the message down (an admin's token only); whether there was one."""
        return bool(self._request("DELETE", "/admin/broadcast").json()["cleared"])

    def context(self) -> dict[str, Any]:
        return self._request("GET", "/context").json()  # type: ignore[no-any-return]

    def images(self, session_type: str | None = None) -> list[dict[str, Any]]:
        params = {"type": session_type} if session_type else {}
        return self._request("GET", "/image", params=params).json()  # type: ignore[no-any-return]


def admin_client(layout: Layout) -> EmulatorClient:
    """The service's client as an admin, for the CLI's admin commands (`broadcast`, `usage`): EMULATE_TOKEN's
    token, else the first admin's in the users file. The instance is looked up first: one that is not up is the
    error, and no users file is ever made for it."""
    url = instance_url(layout)  # first: it may not be up
    token = os.environ.get("EMULATE_TOKEN") or admin_token(layout.users_file)
    return EmulatorClient(layout, api_version="v1", url=url, token=token)
