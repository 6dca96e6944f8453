"""The OpenAPI document of skaha's API as served here: skaha's parameters (read from the query string
or a form body, as cadc-rest does, so FastAPI cannot see them) written down for clients and fuzzers."""

from __future__ import annotations

from typing import Any

from emulator.api.deps import VERSIONS
from emulator.core.admin import EVERYTHING, SORT_KEYS
from emulator.session_types import SESSION_TYPES

STATUSES = ["Pending", "Running", "Terminating", "Succeeded", "Completed", "Failed"]
_TEXT: dict[str, Any] = {"type": "string"}

QUERY: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/skaha/{version}/session", "get"): {
        "view": {"type": "string", "enum": ["all", "stats"]},
        "type": {"type": "string", "enum": list(SESSION_TYPES)},
        "status": {"type": "string", "enum": STATUSES},
    },
    # view=pull is the emulator's own: the progress of the image pull a Pending session waits for.
    ("/skaha/{version}/session/{session_id}", "get"): {"view": {"type": "string", "enum": ["logs", "events", "pull"]}},
    ("/skaha/{version}/session/{session_id}/app", "get"): {"status": {"type": "string", "enum": STATUSES}},
    ("/skaha/{version}/image", "get"): {"type": {"type": "string", "enum": list(SESSION_TYPES)}},
    # The admin API (the emulator's own; admins' own tokens only).
    ("/skaha/v1/admin/sessions", "get"): {
        "user": {"type": "string", "description": "only this user's sessions"},
        "status": {"type": "string", "enum": STATUSES},
        "sort": {"type": "string", "enum": list(SORT_KEYS)},
        "order": {"type": "string", "enum": ["asc", "desc"]},
    },
    ("/skaha/v1/admin/sessions", "delete"): {
        "user": {"type": "string", "description": "delete every session of this user (confirm: their name again)"},
        "all": {"type": "string", "enum": ["true"], "description": f"delete every session (confirm: {EVERYTHING})"},
        "confirm": {"type": "string", "description": f"the user's name again, or the word {EVERYTHING}"},
    },
    ("/skaha/v1/admin/sessions/{ref}", "get"): {"view": {"type": "string", "enum": ["events", "logs"]}},
}
FORM: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/skaha/{version}/session", "post"): {
        "name": _TEXT,
        "image": _TEXT,
        "type": {"type": "string", "enum": list(SESSION_TYPES)},
        "cores": _TEXT,
        "ram": _TEXT,
        "gpus": _TEXT,
        "cmd": _TEXT,
        "args": _TEXT,
        "env": {"type": "array", "items": _TEXT},
        # The emulator's own: honoured only where the platform runs with EMULATE_FAULTS=true, refused elsewhere.
        "fault": {
            "type": "string",
            "description": "A fault to emulate (EMULATE_FAULTS=true only; refused otherwise): pending, pull, "
            "oom:SECONDS or end:SECONDS[:EXIT_CODE]. The env entry EMULATE_FAULT=... asks too.",
        },
    },
    ("/skaha/{version}/session/{session_id}", "post"): {
        "action": {
            "type": "string",
            "description": "renew (skaha's), or snapshot: the emulator's own, the Running session saved as an image "
            "(not /arc, not /scratch); answers the image's name",
        },
        "tag": {
            "type": "string",
            "description": "with action=snapshot: the image's name[:tag], under snapshot/<user>/ (default: "
            "snapshot/<user>/<image name>:<session name>-<UTC time>)",
        },
        # The emulator's own (`emulate dev --mount`): SOURCE:TARGET host folders, on a one-person laptop only.
        "mount": {"type": "array", "items": _TEXT},
    },
    ("/skaha/{version}/session/{session_id}/app", "post"): {"image": _TEXT, "cores": _TEXT, "ram": _TEXT},
    # The emulator's own: the admins' message to every dashboard (api/notices.py).
    ("/skaha/v1/admin/broadcast", "put"): {
        "text": {"type": "string", "description": "One line of printable text, up to 500 characters"}
    },
    ("/skaha/v1/admin/sessions/{ref}", "post"): {
        "action": {"type": "string", "enum": ["renew"], "description": "renew anyone's session as skaha's renew does"}
    },
}

# skaha's header for private registries: base64 of `username:secret`, used for the launch's pull only.
HEADER: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/skaha/{version}/session", "post"): {"x-skaha-registry-auth": _TEXT},
    ("/skaha/{version}/session/{session_id}/app", "post"): {"x-skaha-registry-auth": _TEXT},
}


def describe(document: dict[str, Any]) -> dict[str, Any]:
    """Add skaha's parameters, the versions and bearer authentication to FastAPI's document."""
    document.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            parameters = operation.setdefault("parameters", [])
            for parameter in parameters:
                if parameter["name"] == "version":
                    parameter["schema"] = {"type": "string", "enum": list(VERSIONS)}
            for name, schema in QUERY.get((path, method), {}).items():
                parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
            for name, schema in HEADER.get((path, method), {}).items():
                parameters.append({"name": name, "in": "header", "required": False, "schema": schema})
            form = FORM.get((path, method))
            if form:
                body = {"type": "object", "properties": form}
                operation["requestBody"] = {"content": {"application/x-www-form-urlencoded": {"schema": body}}}
            if path.startswith(("/skaha/{version}", "/skaha/v1/", "/metrics")):
                operation["security"] = [{"bearer": []}]
    return document
