"""Every setting of the emulator, with its default, in one place (env prefix EMULATE_).

The CLI and the service read the same settings; `emulate up` hands the CLI's
settings to the service container as EMULATE_* variables, and mounts every
host path at the same path inside it so that paths mean the same on both sides.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from emulator import naming
from emulator.errors import ConfigError
from emulator.layout import INSTANCE_PATTERN, INSTANCE_RULE, Layout
from emulator.session_hosts import SessionHosts

# Settings only the host side uses (image builds, the gateway's start); the service never sees them, so
# changing one does not restart it.
_HOST_ONLY = {"images_dir", "service_image", "extra_ca_bundle", "gateway_cpus"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
NO_SESSION_HOSTS = "none"  # EMULATE_SESSION_DOMAIN=none: sessions on the portal's host
_DOMAIN = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _shipped(folder: str) -> Path:
    """The profiles or image recipes: the checkout's folder, or, installed from a wheel, the package's copy."""
    checkout = REPO_ROOT / folder
    if (REPO_ROOT / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "shipped" / folder


class Settings(BaseModel):
    """Defaults here; `load_settings` reads the EMULATE_* variables (one per field) on top."""

    model_config = ConfigDict(extra="ignore")

    instance: str = Field("default", description="Name that namespaces every container, network, route and folder.")
    host: str = Field("127.0.0.1", description="Host address the gateway is published on.")
    port: int = Field(8080, ge=0, le=65535, description="Host port the gateway is published on.")
    auth: bool = Field(
        False, description="Session routes admit only signed-in users (always on when not bound to loopback)."
    )
    tls: bool = Field(False, description="Serve HTTPS with Caddy's internal CA (trust the CA file `up` names).")
    tls_names: list[str] = Field(
        default_factory=list, description="Names and addresses the HTTPS certificate covers (default: found by `up`)."
    )
    public_url: str | None = Field(None, description="Base URL in connect URLs (default http://<host>:<port>).")
    session_domain: str | None = Field(
        None,
        description="Each session is served at <id>.<this domain> with the portal's scheme and port (needs a "
        "wildcard DNS name to this machine). Default: localhost when the platform is on loopback (browsers send "
        "*.localhost there); elsewhere none. 'none': sessions on the portal's own host.",
    )
    state_dir: Path | None = Field(None, description="SQLite state, per-session files, gateway socket.")
    config_dir: Path | None = Field(None, description="Folder holding users.yaml (tokens, uids, groups).")
    arc_dir: Path | None = Field(None, description="Host folder mounted as /arc in every session.")
    profiles_dir: Path = Field(_shipped("profiles"), description="Folder of session profiles (*.yaml).")
    images_dir: Path = Field(_shipped("images"), description="Folder of image recipes.")
    service_image: str = Field(
        "skaha-emulator/service:latest",
        min_length=1,
        description="The service's image, as `emulate images build service` tags it and `emulate up` runs it: "
        "another tag develops the service beside a platform running the released one.",
    )
    max_sessions: int = Field(3, description="Concurrent interactive sessions per user (skaha.maxusersessions).")
    max_jobs: int = Field(10, ge=1, description="Concurrent headless jobs per user (skaha has no limit).")
    max_apps_per_desktop: int = Field(8, ge=1, description="Desktop-apps running on one desktop at once.")
    max_snapshots: int = Field(
        10, ge=0, description="Images one user may save from sessions (`emulate snapshot`); replacing one is free."
    )
    host_headroom_gb: float = Field(
        1.0, ge=0, description="Memory kept back from fixed sessions for the host and the platform itself."
    )
    max_user_memory_gb: float | None = Field(
        None,
        gt=0,
        description="Memory one user's sessions may use in all (fixed: their memory; flexible: their limit, /scratch "
        "included), on a shared server; none: no cap.",
    )
    session_expiry_seconds: int = Field(345600, description="Interactive session lifetime; renew resets it.")
    headless_expiry_seconds: int = Field(1209600, description="Headless job deadline (14 days, as skaha).")
    log_tail_lines: int = Field(10000, ge=1, description="view=logs: at most this many of the newest lines.")
    log_max_bytes: int = Field(4 << 20, ge=1024, description="view=logs: at most this many bytes per container.")
    user_subnets: str = Field(
        "198.18.0.0/16",
        description="Range the users' networks are carved from, one subnet each (default: the RFC 2544 "
        "benchmarking range, outside Docker's own pools and seldom on a LAN).",
    )
    user_subnet_prefix: int = Field(26, ge=16, le=29, description="Size of each user's subnet (/26: 62 addresses).")
    pids_limit: int = Field(4096, description="Maximum processes in one session container.")
    min_free_gb: float = Field(
        1.0, ge=0, description="Launches are refused while the disk under /arc or the state folder has less free."
    )
    session_layer_gb: float | None = Field(
        None,
        gt=0,
        description="What a session may write inside its own container (outside /arc), where the engine can cap "
        "it (overlay2 on XFS with project quotas, btrfs, ZFS, devicemapper); elsewhere it is measured and counted "
        "in the user's quota instead (default: no cap).",
    )
    user_home_quota_gb: float | None = Field(
        None,
        gt=0,
        description="Each user's /arc/home quota, kept by watching: launches refused at 90%, running sessions "
        "stopped at 100% (default: none).",
    )
    selinux: Literal["auto", "relabel", "disable", "off"] = Field(
        "auto",
        description="Sessions' bind mounts where SELinux labels containers: relabel (:z), disable (label=disable), "
        "off; auto relabels where the engine reports SELinux.",
    )
    require_limits: bool = Field(
        False,
        description="Refuse to start (`emulate up`, the service) where the engine cannot enforce the sessions' "
        "memory, CPU and pids limits (rootless on cgroup v1, no cgroup driver, controllers not delegated).",
    )
    dev_mounts: bool | None = Field(
        None,
        description="Launches may bind-mount host folders into sessions (`emulate dev --mount`). Default: only on a "
        "one-person laptop (loopback, no sign-in, one engine); `true` allows it anywhere, for every user.",
    )
    repositories: list[str] = Field(
        ["localhost", "images.canfar.net"],
        description="Registry hosts GET /repository lists: localhost names this machine's own images "
        "(localhost/project/name:tag in GET /image), first, so a portal's form offers them first.",
    )
    registries: list[str] | None = Field(
        None,
        description="The registries (host or host:port) launches may pull from. Unset: any on a single-user "
        "laptop; with sign-in on, any but those at loopback, link-local or private addresses.",
    )
    extra_ca_bundle: Path | None = Field(
        None,
        description="PEM bundle trusted by image builds (TLS proxies); default: PIP_CERT, "
        "REQUESTS_CA_BUNDLE or SSL_CERT_FILE, the first one set.",
    )
    image_pull: Literal["missing", "never"] = Field(
        "missing",
        description="Pull a launch's image when it is not local (`missing`, Kubernetes' IfNotPresent) or "
        "refuse the launch (`never`: an offline machine).",
    )
    arc_nfs: str | None = Field(
        None,
        description="An NFS export (server:/path) sessions mount as /arc through Docker's local volume driver, on "
        "whichever machine they run; the same export must be mounted at the arc folder where the service runs.",
    )
    overlay_encrypted: bool = Field(
        False,
        description="Across a swarm, encrypt the users' overlay networks between machines (IPsec; the kernels "
        "must have it).",
    )
    orchestrator: Literal["engine", "swarm"] = Field(
        "engine",
        description="Where sessions run: this Docker engine, or across a Docker Swarm (`up --swarm`, on a manager).",
    )
    pull_stall_seconds: float = Field(
        300.0, gt=0, description="A pull that hears nothing from the engine for this long fails (a stalled registry)."
    )
    gateway_cpus: int = Field(
        1,
        ge=1,
        description="Cores the gateway's Go runtime runs on at once (its GOMAXPROCS): on one, a proxied request "
        "never waits for another thread to wake (the least added latency); raise it where the gateway carries "
        "more than one core's worth of traffic.",
    )
    service_port: int = Field(8000, description="Port the service listens on inside the platform network.")
    probe_interval: float = Field(0.05, description="Seconds between readiness probes of a starting session.")
    loop_interval: float = Field(
        10.0,
        gt=0,
        description="Longest time between housekeeping passes (expiry, retention); a container that "
        "starts or ends is seen at once, through the engine's events.",
    )
    idle_cull_hours: float | None = Field(
        None,
        gt=0,
        description="Interactive sessions with no traffic through the gateway for this many hours (fractions too) "
        "are deleted, their owner warned on the dashboard an hour before (half the time under two hours); unset: "
        "never, as on CANFAR.",
    )
    finished_retention_seconds: int = Field(86400, description="How long ended interactive sessions stay listed.")
    headless_retention_seconds: int = Field(3600, description="How long ended headless sessions stay listed.")
    faults: bool = Field(
        False,
        description="Launches may ask for a fault (fault=pending|pull|oom:SECONDS|end:SECONDS[:CODE], or the env "
        "entry EMULATE_FAULT=...), so clients' time-outs and clean-up can be tested; refused when off. Never on a "
        "platform people rely on.",
    )

    @field_validator("arc_nfs")
    @classmethod
    def _nfs_export(cls, value: str | None) -> str | None:
        if value is not None and (":/" not in value or value.startswith(":")):
            raise ValueError("an NFS export is server:/path")
        return value

    @field_validator("session_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        domain = value.strip().strip(".").lower()
        if not _DOMAIN.fullmatch(domain):
            raise ValueError("a DNS name such as sessions.example.org, whose every subdomain reaches this machine")
        return domain

    @model_validator(mode="after")
    def _portal_not_a_session_host(self) -> Settings:
        hosts = self.session_hosts
        portal = urlsplit(self.base_url).hostname or ""
        if hosts is not None and portal.partition(".")[2] == hosts.domain:  # what the gateway's *.<domain> takes
            raise ValueError(
                f"EMULATE_SESSION_DOMAIN={hosts.domain!r}: the portal's own host {portal} would be taken for a "
                f"session's; give sessions a domain of their own, such as sessions.{portal}"
            )
        return self

    @field_validator("instance")
    @classmethod
    def _valid_instance(cls, value: str) -> str:
        if not INSTANCE_PATTERN.match(value):
            raise ValueError(INSTANCE_RULE)
        return value

    @property
    def prefix(self) -> str:
        """Name prefix of everything this instance creates in Docker (like a Compose project)."""
        return naming.PLATFORM_PREFIX if self.instance == "default" else f"{naming.PLATFORM_PREFIX}-{self.instance}"

    @property
    def network(self) -> str:
        """The instance's bridge network, which sessions, the gateway and the service share."""
        return self.prefix

    @property
    def layout(self) -> Layout:
        """Where this instance keeps its files (the rules the CLI's light commands share)."""
        return Layout(self.instance, self.state_dir, self.config_dir, self.arc_dir)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def session_hosts(self) -> SessionHosts | None:
        """Where each session is served on a host of its own; None: on the portal's host (no origin split)."""
        parts = urlsplit(self.base_url)
        domain = self.session_domain
        if domain is None:
            domain = "localhost" if (parts.hostname or "") in LOOPBACK_NAMES else NO_SESSION_HOSTS
        return SessionHosts(domain, parts.scheme, parts.port) if domain != NO_SESSION_HOSTS else None

    def session_url(self, session_id: str) -> str:
        """The origin a session is served at (the portal's when sessions have no hosts of their own)."""
        hosts = self.session_hosts
        return hosts.origin(session_id) if hosts is not None else self.base_url

    @property
    def auth_required(self) -> bool:
        """Whether session routes check who is asking: asked for, or the gateway is reachable from others."""
        return self.auth or self.host not in LOOPBACK_NAMES

    def lifetime_seconds(self, batch: bool) -> int:
        """How long a session lives (and what renew gives it): skaha's Job deadline, longer for batch jobs."""
        return self.headless_expiry_seconds if batch else self.session_expiry_seconds

    def retention_seconds(self, batch: bool) -> int:
        """How long an ended session stays listed (skaha's ttlSecondsAfterFinished), shorter for batch jobs."""
        return self.headless_retention_seconds if batch else self.finished_retention_seconds

    def as_environment(self) -> dict[str, str]:
        """These settings as EMULATE_* variables, with every path made explicit (unset optionals left out)."""
        layout = self.layout
        explicit = {"state_dir": layout.state_path, "config_dir": layout.config_path, "arc_dir": layout.arc_path}
        env = {}
        for name in type(self).model_fields.keys() - _HOST_ONLY:
            value = explicit.get(name, getattr(self, name))
            if value is None:
                continue
            env[f"EMULATE_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
        return env


def from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, object]:
    """The EMULATE_<FIELD> variables that are set: lists as JSON, the rest as text for pydantic to convert.

    Read here rather than through pydantic-settings, whose import alone costs every CLI command
    about 0.08 s (most of the time `emulate ps` may take)."""
    found: dict[str, object] = {}
    for name, field in Settings.model_fields.items():
        raw = environ.get(f"EMULATE_{name.upper()}")
        if not raw:  # unset, or set to nothing: the default (as the CLI's Layout reads them too)
            continue
        if "list" in str(field.annotation):
            try:
                found[name] = json.loads(raw)
            except ValueError:
                raise ConfigError(
                    f"invalid setting: EMULATE_{name.upper()} must be a JSON list, e.g. '[\"a\"]'"
                ) from None
        else:
            found[name] = raw
    return found


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI options) on top."""
    values = {**from_environment(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("invalid setting: " + "; ".join(_problem(e, values) for e in exc.errors())) from None


def _problem(error: ErrorDetails, values: Mapping[str, object]) -> str:
    """One of pydantic's errors as a sentence naming the variable people set: 'EMULATE_X=0: Input should ...'."""
    where = error.get("loc") or ("",)
    field, message = str(where[0]), str(error["msg"]).removeprefix("Value error, ")
    if field not in Settings.model_fields:
        return message
    item = "".join(f"[{i}]" for i in where[1:])  # a list's item: EMULATE_TLS_NAMES[1]
    shown = error["input"] if item else values.get(field)
    return f"EMULATE_{field.upper()}{item}={shown!r}: {message}"
