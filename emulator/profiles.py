"""Session profiles: each session type's contract as data (profiles/*.yaml).

A profile says which port the app serves, what the platform runs, which
environment it sets, under which path the gateway routes it (and whether the
prefix is stripped), how readiness is probed, whether resources are fixed, and
the connect URL. Templates use {placeholders} from `TEMPLATE_FIELDS`; unknown
placeholders are reported at load time with the file and field that hold them.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulator.errors import ConfigError
from emulator.session_types import SessionType
from emulator.yamlfile import read_model

TEMPLATE_FIELDS = {
    "session_id": "the 8-character session id",
    "session_name": "the session name, lowercased",
    "user": "the user's name",
    "uid": "the user's uid",
    "gid": "the user's gid",
    "home": "the user's home, /arc/home/<user>",
    "top_level": "the storage top level, /arc",
    "projects": "the projects folder, /arc/projects",
    "threads": "max(1, requested cores) as an integer",
    "api_host": "host[:port] of the skaha API as seen from inside a session",
    "api_version": "v0 or v1",
    "base_url": "the public base URL, e.g. http://127.0.0.1:8080",
    "session_url": "the session's own origin, e.g. http://<id>.localhost:8080 (the base URL where sessions have "
    "no hosts of their own)",
    "ws_session_url": "the session's own origin with a WebSocket scheme, e.g. ws://<id>.localhost:8080",
    "ws_base_url": "the public base URL with a WebSocket scheme, e.g. ws://127.0.0.1:8080",
    "app_token": "the desktop's token for calling the API back (x-auth-token-skaha)",
    "app_name": "the image's last path segment with ':', '.' and '_' as '-' (desktop-app window title)",
    "desktop_host": "the desktop container's name on the session network (desktop-app DISPLAY host)",
}


# Gateway request headers are set by one route for all sessions of a type: instance-wide values only.
HEADER_FIELDS = {"forwarded_proto": "the scheme of the public URL (http, or https behind TLS)"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Probe(_Strict):
    kind: Literal["http", "tcp"] = Field(description="http: any answer below 500 counts; tcp: a connection counts.")
    path: str = Field("/", description="Path of the HTTP probe (a template).")


class ExtraRoute(_Strict):
    """A further path prefix of the same session, to another port (e.g. CARTA 1.x's separate WebSocket route)."""

    path_prefix: str
    port: int = Field(ge=1, le=65535)
    strip_prefix: bool = False


class FixedResources(_Strict):
    cores_request: float
    cores_limit: float
    ram_request_gb: float
    ram_limit_gb: float


# What a type is unless its profile says otherwise, so a profiles folder written before these
# flags existed keeps its meaning (skaha's headless jobs and desktop-apps).
TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    SessionType.HEADLESS: {"interactive": False, "batch": True, "counts_toward_limit": False},
    SessionType.DESKTOP: {"x11": "server"},
    SessionType.DESKTOP_APP: {
        "x11": "client",
        "interactive": False,
        "attaches_to": SessionType.DESKTOP,
        "counts_toward_limit": False,
        "hostname": "{app_name}",
    },
}


class Profile(_Strict):
    type: SessionType
    description: str
    default_image: str = Field(description="Image launched when the user names none (CLI).")
    interactive: bool = Field(True, description="Routed and probed; False for jobs and desktop-apps.")
    batch: bool = Field(
        False,
        description="A batch job (skaha's headless): honours the user's cmd, args and env, runs to its end "
        "under the job deadline, gets the headless resource defaults and has no connect URL in v1.",
    )
    queue: bool = Field(
        False,
        description="A batch job that the machine's free cores, memory or GPUs cannot place waits Pending in one "
        "first-come-first-served queue (CANFAR's Kueue) and starts when they free, instead of being refused. "
        "Only a batch type may queue: an interactive session has a person waiting, and fails fast.",
    )
    attaches_to: SessionType | None = Field(
        None, description="Launched onto a session of this type (POST /session/<id>/app), not on its own."
    )
    counts_toward_limit: bool = Field(True, description="Counts towards the user's concurrent-session limit.")
    hostname: str = Field("{session_name}", description="The container's hostname (a template).")
    x11: Literal["server", "client"] | None = Field(
        None,
        description="server: the session runs an X display that requires the desktop's cookie (XAUTHORITY); "
        "client: it draws on its desktop's display with that cookie.",
    )
    mounts: dict[str, str] = Field(
        default_factory=dict,
        description="skaha's ConfigMaps: container path -> a folder beside the profiles, mounted read-only.",
    )
    scratch_gb: float = Field(
        200,
        gt=0,
        description="Size of /scratch, skaha's ephemeral-storage limit for the type. Here /scratch is a tmpfs "
        "whose pages count against the session's memory, so it is capped at half the memory limit.",
    )
    port: int | None = Field(None, ge=1, le=65535, description="Port the app serves inside the container.")
    command: list[str] | None = Field(None, description="What the platform runs; null runs the image's own CMD.")
    working_dir: str | None = Field(None, description="Working directory (a template); null keeps the image's.")
    environment: dict[str, str] = Field(default_factory=dict, description="Extra environment (templates).")
    path_prefix: str | None = Field(None, description="Gateway path prefix (a template), ending in '/'.")
    strip_prefix: bool = Field(False, description="Whether the gateway strips the prefix before proxying.")
    extra_routes: list[ExtraRoute] = Field(default_factory=list, description="More prefixes of the session.")
    request_headers: dict[str, str] = Field(default_factory=dict, description="Headers the gateway sets.")
    readiness: Probe | None = None
    startup_timeout_seconds: int = Field(300, ge=1)
    log_max_mb: int = Field(
        10,
        ge=1,
        le=1024,
        description="The container log's size before it is rotated (MB): one print loop "
        "must not fill the server's disk.",
    )
    log_files: int = Field(
        3, ge=1, le=20, description="How many rotated log files a session keeps (its cap: log_max_mb times this)."
    )
    fixed_resources: FixedResources | None = Field(None, description="Resources the type always gets.")
    gpus_allowed: bool = True
    connect_url: str = Field(description="Connect URL template, or 'not-applicable'.")

    @model_validator(mode="before")
    @classmethod
    def _type_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") in TYPE_DEFAULTS:
            return {**TYPE_DEFAULTS[data["type"]], **data}
        return data

    def render(self, template: str, values: dict[str, str]) -> str:
        return template.format(**values)

    def templates(self) -> dict[str, str]:
        """Every templated field, by its name in the file."""
        found = {"connect_url": self.connect_url, "hostname": self.hostname}
        if self.path_prefix:
            found["path_prefix"] = self.path_prefix
        if self.working_dir:
            found["working_dir"] = self.working_dir
        if self.readiness:
            found["readiness.path"] = self.readiness.path
        for i, part in enumerate(self.command or []):
            found[f"command[{i}]"] = part
        for key, value in self.environment.items():
            found[f"environment.{key}"] = value
        return found


def _placeholders(template: str) -> list[str]:
    """The names a format string fills in (ValueError: it is no format string)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def _template_errors(profile: Profile) -> list[str]:
    """Every problem of a profile that its model alone cannot see, in the order of its fields."""
    return [
        *_placeholder_errors(profile),
        *_prefix_errors(profile),
        *_header_errors(profile),
        *_mount_errors(profile),
        *_route_errors(profile),
        *_flag_errors(profile),
    ]


def _placeholder_errors(profile: Profile) -> list[str]:
    errors = []
    for field, template in profile.templates().items():
        try:
            names = _placeholders(template)
        except ValueError as exc:
            errors.append(f"{field}: {exc}")
            continue
        for name in names:
            if name not in TEMPLATE_FIELDS:
                errors.append(f"{field}: unknown placeholder {{{name}}} (known: {', '.join(TEMPLATE_FIELDS)})")
    return errors


def _prefix_errors(profile: Profile) -> list[str]:
    errors = []
    prefixes = {"path_prefix": profile.path_prefix} if profile.path_prefix is not None else {}
    prefixes.update({f"extra_routes[{i}].path_prefix": r.path_prefix for i, r in enumerate(profile.extra_routes)})
    for field, prefix in prefixes.items():
        if not prefix.endswith("/"):
            errors.append(f"{field}: must end with '/'")
        # The gateway routes every session of a type with one route, so the prefix may vary by id only.
        try:
            fields = _placeholders(prefix)
        except ValueError:
            fields = []
        if fields != ["session_id"]:
            errors.append(f"{field}: must contain {{session_id}} exactly once and no other placeholder")
    return errors


def _header_errors(profile: Profile) -> list[str]:
    errors = []
    for key, value in profile.request_headers.items():
        try:
            used = set(_placeholders(value))
        except ValueError:
            used = {"?"}
        if not used <= set(HEADER_FIELDS):
            errors.append(f"request_headers.{key}: may only use {{forwarded_proto}} (one route serves every session)")
    return errors


def _mount_errors(profile: Profile) -> list[str]:
    errors = []
    for target, folder in profile.mounts.items():
        if not target.startswith("/") or target.rstrip("/") in ("", "/arc", "/scratch", "/skaha-system"):
            errors.append(f"mounts.{target}: must be an absolute path other than /, /arc, /scratch, /skaha-system")
        if not folder or "/" in folder or folder.startswith("."):
            errors.append(f"mounts.{target}: '{folder}' must name a folder beside the profiles (no '/')")
    return errors


def _route_errors(profile: Profile) -> list[str]:
    errors = []
    readiness = profile.readiness
    kept_prefix = profile.path_prefix is not None and not profile.strip_prefix
    if (
        readiness
        and readiness.kind == "http"
        and kept_prefix
        and not readiness.path.startswith(profile.path_prefix or "")
    ):
        errors.append("readiness.path: must lie under path_prefix (the gateway keeps the prefix)")
    if profile.interactive and (profile.port is None or profile.path_prefix is None):
        errors.append("interactive profiles need both port and path_prefix")
    return errors


def _flag_errors(profile: Profile) -> list[str]:
    if profile.queue and not profile.batch:
        return ["queue: only a batch type may queue (an interactive session has a person waiting: it fails fast)"]
    return []


def load_profile(path: Path) -> Profile:
    profile = read_model(path, Profile, "profile")
    problems_list = _template_errors(profile)
    if problems_list:
        raise ConfigError(f"profile {path} is invalid: {'; '.join(problems_list)}")
    if path.stem != profile.type:
        raise ConfigError(f"profile {path} is invalid: type '{profile.type}' must match the file name")
    missing = [folder for folder in profile.mounts.values() if not (path.parent / folder).is_dir()]
    if missing:
        raise ConfigError(f"profile {path} is invalid: mounts: no folder {', '.join(missing)} beside it")
    return profile


def load_profiles(directory: Path) -> dict[str, Profile]:
    """Every profile in `directory`, keyed by session type; all problems reported at once."""
    if not directory.is_dir():
        raise ConfigError(f"profiles folder {directory} does not exist")
    profiles: dict[str, Profile] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            profile = load_profile(path)
        except ConfigError as exc:
            problems.append(exc.message)
            continue
        profiles[profile.type] = profile
    if problems:
        raise ConfigError("\n".join(problems))
    return profiles
