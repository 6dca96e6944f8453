"""EmulatorClient: the CLI's only way into the service, over skaha's own HTTP API.

It finds the URL (EMULATE_URL, else what `emulate up` recorded for the instance; an instance
that is not up is an error, never some other instance's port) and the token (EMULATE_TOKEN,
else the users file), and maps HTTP error answers back to the EmulatorError classes. It imports
neither the Docker SDK nor the service's code, so session commands start fast.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from emulator.client.discovery import recorded_url, tls_verify
from emulator.errors import Forbidden, NotFound, Unavailable, error_for_status
from emulator.layout import Layout
from emulator.users.tokens import token_for

UNENFORCED_LIMITS = "x-emulator-limits-not-enforced"  # the service's headers (emulator/api/skaha.py)
RAM_COUNTS_CACHE = "x-emulator-ram-includes-cache"


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
        https = self.base_url.startswith("https:")
        self.verify = tls_verify(layout, https)
        # Plain HTTP needs no CA bundle, whose loading would cost more than the request itself.
        self._http = httpx.Client(headers=self.auth_headers, timeout=30, verify=self.verify if https else False)

    def _request(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> httpx.Response:
        try:
            try:
                response = self._http.request(method, f"{self.api}{path}", **kwargs)
            except httpx.RemoteProtocolError:
                # The gateway closes idle keep-alive connections whenever its routes change;
                # an idempotent request that met such a close is simply sent again, once.
                if not idempotent:
                    raise
                response = self._http.request(method, f"{self.api}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the emulator at {self.base_url} ({exc.__class__.__name__}); "
                "is it running? start it with `emulate up`"
            ) from exc
        if response.status_code >= 400:
            raise error_for_status(response.status_code, response.text.strip() or response.reason_phrase)
        return response

    def launch(self, registry_auth: str | None = None, **params: Any) -> str:
        """Launch; `registry_auth` is skaha's x-skaha-registry-auth header (base64 of user:secret)."""
        data: dict[str, Any] = {k: str(v) for k, v in params.items() if v is not None and k != "env"}
        if params.get("env"):
            data["env"] = list(params["env"])  # repeated env=... fields
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

    def delete(self, session_id: str) -> None:
        try:
            self._request("DELETE", f"/session/{session_id}")
        except NotFound as exc:  # skaha's body is the bare id; people get a sentence
            raise NotFound(f"no session {session_id}") from exc
        except Forbidden as exc:
            raise Forbidden(f"session {session_id} belongs to another user") from exc

    def context(self) -> dict[str, Any]:
        return self._request("GET", "/context").json()  # type: ignore[no-any-return]

    def images(self, session_type: str | None = None) -> list[dict[str, Any]]:
        params = {"type": session_type} if session_type else {}
        return self._request("GET", "/image", params=params).json()  # type: ignore[no-any-return]
