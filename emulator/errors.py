"""One exception tree for the whole emulator.

    EmulatorError                 any failure we explain to a user (500 by default)
    ├── InvalidRequest            400: bad parameter, unknown type, limit reached (skaha uses 400)
    ├── NotAuthenticated          401: no or wrong token
    ├── Forbidden                 403: someone else's session
    ├── NotFound                  404: no such session
    ├── EngineError               500: the container engine refused (its words: for the log only)
    │   └── SubnetTaken           the engine refused a network's subnet as used (by its networks or the host's)
    ├── EngineRefused             the engine refused a session's container: its words, said to the user
    ├── ImagePullError            an image could not be pulled (its reason goes into the session's events)
    ├── Unavailable               503: Docker or the gateway cannot be reached
    ├── DiskFull                  507: the disk under /arc, the state or the engine is full (said in words)
    └── ConfigError               a profile, users file or setting is wrong (names file and field)

Each class carries the HTTP status skaha answers with; the message is the exact
text/plain body skaha sends (its `cadc-rest` error answers). The API maps these
to responses in one handler; the HTTP client maps responses back to the same
classes; the CLI prints the message on one line.
"""

from __future__ import annotations


class EmulatorError(Exception):
    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(EmulatorError):
    status_code = 400


class NotAuthenticated(EmulatorError):
    status_code = 401


class Forbidden(EmulatorError):
    status_code = 403


class NotFound(EmulatorError):
    status_code = 404


class EngineError(EmulatorError):
    status_code = 500


class SubnetTaken(EngineError):
    """A network's subnet is in use: Docker says it overlaps, Podman that it is already used on the host."""


class EngineRefused(EmulatorError):
    """The engine would not create or start a session's container (an option it does not take, a runtime
    failure): the launch fails with the engine's own words, since they say what to change."""

    status_code = 500


class ImagePullError(EmulatorError):
    status_code = 500


class Unavailable(EmulatorError):
    status_code = 503


class ConfigError(EmulatorError):
    status_code = 500


class DiskFull(EmulatorError):
    """A disk the platform writes to is full, or too full to start anything more: said as it is, since the
    caller can do something about it (delete files, ask the operator)."""

    status_code = 507


_BY_STATUS: dict[int, type[EmulatorError]] = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    503: Unavailable,
    507: DiskFull,
}


def error_for_status(status_code: int, message: str) -> EmulatorError:
    """The exception a client raises for an HTTP error answer."""
    return _BY_STATUS.get(status_code, EmulatorError)(message)
