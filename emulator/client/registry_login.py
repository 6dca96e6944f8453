"""skaha's x-skaha-registry-auth header from what `docker login` stored for an image's registry.

Read here rather than through the Docker SDK so the CLI's session commands never load it. Docker's
own order: a registry's credential helper (`credHelpers`), else the default store (`credsStore`),
else the base64 `auth` kept in config.json's `auths`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from docker_image.reference import Reference

from emulator.errors import ConfigError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # how Docker keys Docker Hub's credentials


def registry_of(image: str) -> str:
    domain, _ = Reference.parse_normalized_named(image).split_hostname()
    return str(domain)


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _keys(registry: str) -> list[str]:
    if registry == "docker.io":
        return [DOCKER_HUB_KEY, "docker.io", "index.docker.io"]
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"]


def _from_helper(helper: str, registry: str) -> str | None:
    program = f"docker-credential-{helper}"
    for key in _keys(registry):
        try:
            done = subprocess.run([program, "get"], input=key, capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise ConfigError(
                f"Docker's credential helper {program} (named in {docker_config_path()}) is not installed"
            ) from None
        except subprocess.TimeoutExpired:
            raise ConfigError(f"Docker's credential helper {program} did not answer in 30 s") from None
        if done.returncode == 0:
            try:
                found = json.loads(done.stdout)
                return _header(str(found.get("Username", "")), str(found.get("Secret", "")))
            except (ValueError, AttributeError):
                raise ConfigError(f"Docker's credential helper {program} answered something that is not JSON") from None
    return None


def _header(username: str, secret: str) -> str | None:
    if not username or not secret:
        return None
    return base64.b64encode(f"{username}:{secret}".encode()).decode()


def registry_auth_header(image: str) -> str:
    """The header for the registry `image` comes from, or a ConfigError saying how to log in to it."""
    registry = registry_of(image)
    path = docker_config_path()
    try:
        config: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Docker's credentials file {path} cannot be read: {exc}") from exc
    helper = next(
        (config.get("credHelpers", {}).get(k) for k in _keys(registry) if k in config.get("credHelpers", {})), None
    )
    header = None
    if helper or config.get("credsStore"):
        header = _from_helper(helper or config["credsStore"], registry)
    if header is None:
        for key in _keys(registry):
            stored = (config.get("auths") or {}).get(key) or {}
            if stored.get("auth"):
                header = stored["auth"]
                break
            header = _header(stored.get("username", ""), stored.get("password", ""))
            if header:
                break
    if header is None:
        raise ConfigError(f"Docker has no credentials for {registry} in {path}; log in first: docker login {registry}")
    return header
