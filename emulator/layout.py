"""Where an instance keeps its files, from its name and the EMULATE_*_DIR variables alone.

Standard library only: the CLI's session commands find their instance, its URL and its users file
without loading the settings model (pydantic), which would cost them more than their request.
`Settings` answers the same questions through this class, so the rules live in one place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from emulator.errors import ConfigError

INSTANCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
INSTANCE_RULE = "instance names are 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit"


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


@dataclass(frozen=True)
class Layout:
    instance: str = "default"
    state_dir: Path | None = None
    config_dir: Path | None = None
    arc_dir: Path | None = None

    @classmethod
    def from_environment(cls, instance: str | None = None, environ: Mapping[str, str] = os.environ) -> Layout:
        def folder(variable: str) -> Path | None:
            value = environ.get(variable)
            return Path(value) if value else None

        name = instance or environ.get("EMULATE_INSTANCE") or "default"
        if not INSTANCE_PATTERN.match(name):
            raise ConfigError(f"invalid setting: {INSTANCE_RULE} (got {name!r})")
        return cls(name, folder("EMULATE_STATE_DIR"), folder("EMULATE_CONFIG_DIR"), folder("EMULATE_ARC_DIR"))

    @property
    def state_path(self) -> Path:
        return self.state_dir or _xdg("XDG_STATE_HOME", ".local/state") / "skaha-emulator" / self.instance

    @property
    def config_path(self) -> Path:
        return self.config_dir or _xdg("XDG_CONFIG_HOME", ".config") / "skaha-emulator"

    @property
    def arc_path(self) -> Path:
        return self.arc_dir or _xdg("XDG_DATA_HOME", ".local/share") / "skaha-emulator" / self.instance / "arc"

    def user_home(self, name: str) -> Path:
        """A user's home on the host (their /arc/home/<name>)."""
        return self.arc_path / "home" / name

    @property
    def users_file(self) -> Path:
        """Each instance's own: users, passwords and tokens of one never work in another. The default
        instance keeps the name it always had."""
        name = "users.yaml" if self.instance == "default" else f"users-{self.instance}.yaml"
        return self.config_path / name

    @property
    def shared_users_file(self) -> Path | None:
        """The one file every instance read before each had its own (None for the default instance, whose
        file it is): an instance without a file of its own starts from a copy of it."""
        return None if self.instance == "default" else self.config_path / "users.yaml"

    @property
    def instance_file(self) -> Path:
        """Where a running instance records its URL for the CLI (absent while it is down)."""
        return self.state_path / "instance.json"

    @property
    def gateway_data(self) -> Path:
        """Caddy's data folder (its internal CA and certificates), kept across gateway restarts."""
        return self.state_path / "gateway-data"

    @property
    def tls_ca(self) -> Path:
        """The root certificate of the gateway's internal CA, which clients trust for `--tls`."""
        return self.gateway_data / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    # --- inside the state folder -------------------------------------------------------

    @property
    def state_db(self) -> Path:
        """SQLite state (WAL: its -wal and -shm files sit beside it)."""
        return self.state_path / "state.db"

    @property
    def sessions_dir(self) -> Path:
        """Per-session host files (passwd, group), one folder per session, removed with it."""
        return self.state_path / "sessions"

    @property
    def skaha_system_dir(self) -> Path:
        """Host copy of the launch scripts, mounted read-only at /skaha-system (skaha's ConfigMap)."""
        return self.state_path / "skaha-system"

    @property
    def gateway_dir(self) -> Path:
        """Shared by the gateway and the service only: the admin API's unix socket lives here."""
        return self.state_path / "gateway"

    @property
    def admin_socket(self) -> Path:
        return self.gateway_dir / "admin.sock"

    @property
    def access_log(self) -> Path:
        """The gateway's access log of its published port (JSON lines, mode 0600), rolled by Caddy beside it as
        access-<time>.log.gz; the service reads it for sessions' last activity (core/activity.py)."""
        return self.gateway_dir / "access.log"

    @property
    def audit_log(self) -> Path:
        """One JSON line per action people took (core/audit.py), rotated as audit.log.1 ... .5 (mode 0600)."""
        return self.state_path / "audit.log"

    @property
    def signin_key(self) -> Path:
        """The key that signs the portal's sign-in cookies (mode 0600)."""
        return self.state_path / "signin.key"

    @property
    def callback_key(self) -> Path:
        """The key that signs desktops' callback tokens (mode 0600)."""
        return self.state_path / "callback.key"

    def session_files(self, session_id: str) -> Path:
        return self.sessions_dir / session_id

    def config_folder(self, name: str) -> Path:
        """Host copy of a profiles folder that sessions mount read-only (a ConfigMap), e.g. /desktopstartup."""
        return self.state_path / "configmaps" / name
