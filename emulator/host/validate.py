"""`emulate validate IMAGE --type TYPE`: will this image work as a CANFAR session of that type?

Static checks read the image's config and files without running it (port, required programs
and whether other uids may run them, architecture, the session-type label). The smoke run then
launches it under the full contract through the running platform, waits for readiness, fetches
the connect URL through the gateway, opens a WebSocket where the type uses one, scans the logs
for fatal errors, and deletes the session. Every finding says what to change.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from xml.etree import ElementTree

import docker
import docker.errors
import httpx
from websockets.sync.client import connect as ws_connect

from emulator import labels
from emulator.client.http import EmulatorClient
from emulator.core.contract import LOGIN_SHELL
from emulator.errors import EmulatorError
from emulator.host import logcheck
from emulator.profiles import Profile
from emulator.runtime.docker import ImageFiles, docker_errors
from emulator.session_hosts import for_scripts
from emulator.session_types import SessionType

# Programs each type's launch needs besides a shell and cp (skaha's identity set-up uses both).
REQUIRED_PROGRAMS = {SessionType.NOTEBOOK: ["jupyter"], SessionType.DESKTOP_APP: ["xterm"]}
COMMON_PROGRAMS = ["sh", "cp"]
# Where each type opens a terminal. On CANFAR the user's login shell is /sbin/nologin, so a
# terminal that falls back to it (no SHELL in the environment) fails there.
TERMINALS = {
    SessionType.NOTEBOOK: "JupyterLab's terminal",
    SessionType.DESKTOP: "the desktop's xterm",
    SessionType.DESKTOP_APP: "the app's xterm",
}


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # advice only: a warning never fails the validation


def _image_config(client: docker.DockerClient, image: str) -> dict[str, Any]:
    with docker_errors():
        try:
            attrs: dict[str, Any] = client.images.get(image).attrs
        except docker.errors.ImageNotFound:
            raise EmulatorError(f"image '{image}' is not in the local Docker engine; build or pull it first") from None
    return attrs


def _blocked_for_others(files: ImageFiles, path: str, hops: int = 8) -> str | None:
    """None when a uid other than the owner can reach and run `path` (following links); else why not."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        current = "/" + "/".join(parts[:depth])
        stat = files.stat(current)
        if stat is None:
            return f"{current} is missing"
        if files.is_symlink(stat):
            if hops == 0:
                return f"{current}: too many symbolic links"
            target = stat.get("linkTarget") or ""
            resolved = target if target.startswith("/") else posixpath.join(posixpath.dirname(current), target)
            rest = "/".join(parts[depth:])
            return _blocked_for_others(files, posixpath.normpath(f"{resolved}/{rest}" if rest else resolved), hops - 1)
        if not stat["mode"] & 0o001:
            return f"{current} (mode {stat['mode'] & 0o777:04o})"
    return None


def _which(files: ImageFiles, program: str, path_variable: str) -> str | None:
    for folder in path_variable.split(":"):
        candidate = f"{folder.rstrip('/')}/{program}"
        if folder and files.stat(candidate) is not None:
            return candidate
    return None


def static_checks(
    client: docker.DockerClient, image: str, profile: Profile, helper_labels: dict[str, str]
) -> list[Finding]:
    """What the image's config and files say, without running it: a finding per check, in a fixed order."""
    attrs = _image_config(client, image)
    config = attrs.get("Config") or {}
    findings = [_architecture(attrs), _type_label(config, profile)]
    findings += [found for found in (_port(config, profile), _login_shell(config, profile)) if found is not None]
    return findings + _programs(client, image, config, profile, helper_labels)


def _architecture(attrs: dict[str, Any]) -> Finding:
    arch = attrs.get("Architecture", "?")
    return Finding(
        "architecture",
        arch == "amd64",
        f"built for {arch}",
        "" if arch == "amd64" else "build for linux/amd64 (docker build --platform linux/amd64)",
    )


def _type_label(config: dict[str, Any], profile: Profile) -> Finding:
    declared = labels.image_session_types(config.get("Labels") or {})
    label_ok = declared is not None and profile.type in declared
    return Finding(
        "type label",
        label_ok,
        f"{labels.IMAGE_SESSION_TYPES}={','.join(declared) if declared else '(none)'}",
        "" if label_ok else f'add LABEL {labels.IMAGE_SESSION_TYPES}="{profile.type}" to the Dockerfile',
        # Without the label the platform trusts the type (skaha's private-image path); a label that
        # names other types makes launches fail with "image/type mismatch".
        warning=declared is None,
    )


def _port(config: dict[str, Any], profile: Profile) -> Finding | None:
    if profile.port is None:
        return None
    exposed = sorted(config.get("ExposedPorts") or {})
    wanted = f"{profile.port}/tcp"
    return Finding(
        "port",
        wanted in exposed,
        f"exposes {', '.join(exposed) or 'nothing'}; {profile.type} serves {wanted}",
        ""
        if wanted in exposed
        else f"serve on port {profile.port} (the {profile.type} contract); say so with EXPOSE {profile.port}",
        warning=True,  # EXPOSE is documentation; the smoke run shows whether the port answers
    )


def _login_shell(config: dict[str, Any], profile: Profile) -> Finding | None:
    terminal = TERMINALS.get(profile.type)
    if terminal is None:
        return None
    image_env = dict(entry.split("=", 1) for entry in config.get("Env") or [] if "=" in entry)
    shell = profile.environment.get("SHELL") or image_env.get("SHELL")
    return Finding(
        "login shell",
        bool(shell),
        f"SHELL={shell}"
        if shell
        else f"no SHELL in the image's environment: {terminal} would start "
        f"the user's login shell, which is {LOGIN_SHELL} on CANFAR",
        "" if shell else "add ENV SHELL=/bin/bash to the Dockerfile",
        warning=True,  # advice: xterm then fails (here too), JupyterLab's terminal falls back to sh
    )


def _programs(
    client: docker.DockerClient, image: str, config: dict[str, Any], profile: Profile, helper_labels: dict[str, str]
) -> list[Finding]:
    """Whether each program the type's launch runs is on the image's PATH, and runnable by other uids."""
    path_variable = next(
        (e.split("=", 1)[1] for e in config.get("Env") or [] if e.startswith("PATH=")),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    with docker_errors(), ImageFiles(client, image, helper_labels) as files:
        programs = [*COMMON_PROGRAMS, *REQUIRED_PROGRAMS.get(profile.type, [])]
        return [_program(files, program, path_variable, profile) for program in programs]


def _program(files: ImageFiles, program: str, path_variable: str, profile: Profile) -> Finding:
    location = _which(files, program, path_variable)
    if location is None:
        return Finding(
            f"program {program}",
            False,
            f"{program} is not on the image's PATH",
            f"install {program} (the {profile.type} launch runs it)",
        )
    blocked = _blocked_for_others(files, location)
    return Finding(
        f"program {program}",
        blocked is None,
        f"{location}" + (f" cannot be run by other users: {blocked}" if blocked else ""),
        ""
        if blocked is None
        else "sessions run as the user's own uid, not root: make it readable and runnable (chmod -R a+rX)",
    )


def _websocket_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path


def _check_websocket(session: dict[str, Any], base_url: str, headers: dict[str, str]) -> Finding | None:
    session_id, kind = session["id"], session["type"]
    try:
        if kind == SessionType.NOTEBOOK:
            api = f"{base_url}/session/notebook/{session_id}/api"
            # Jupyter's token rides in the query; the bearer token is the gateway's (it never reaches Jupyter).
            kernel = httpx.post(f"{api}/kernels?token={session_id}", headers=headers, json={}, timeout=30).json()
            try:
                path = f"/session/notebook/{session_id}/api/kernels/{kernel['id']}/channels?token={session_id}"
                with ws_connect(_websocket_url(base_url, path), open_timeout=15, additional_headers=headers):
                    pass
            finally:
                httpx.delete(f"{api}/kernels/{kernel['id']}?token={session_id}", headers=headers, timeout=30)
        elif kind == SessionType.DESKTOP:
            url = _websocket_url(base_url, f"/session/desktop/{session_id}/")
            with ws_connect(url, open_timeout=15, additional_headers=headers) as ws:
                greeting = ws.recv(timeout=10)
                if not (greeting.encode() if isinstance(greeting, str) else greeting).startswith(b"RFB"):
                    return Finding(
                        "websocket",
                        False,
                        "noVNC's WebSocket did not speak VNC",
                        "noVNC on 6901 must proxy the VNC server (websockify to :5901)",
                    )
        elif kind == SessionType.CARTA:
            url = _websocket_url(base_url, f"/session/carta/{session_id}/")
            with ws_connect(url, open_timeout=15, additional_headers=headers):
                pass
        else:
            return None
    except Exception as exc:  # any failure to open it is the finding
        return Finding(
            "websocket",
            False,
            f"could not open the {kind} WebSocket: {exc}",
            "serve WebSocket upgrades under the session's path, as the type's contract says",
        )
    return Finding("websocket", True, f"{kind} WebSocket opened through the gateway")


def smoke_run(
    client: EmulatorClient,
    image: str,
    profile: Profile,
    timeout: float,
    say: Callable[[str], None],
    log_rules: logcheck.IgnoreRules = logcheck.NO_RULES,
) -> list[Finding]:
    """The image launched under the full contract through the running platform: whether it starts, answers
    its connect URL and WebSocket through the gateway, and logs nothing fatal (but what the image's
    `log_rules` ignore); the session is deleted after."""
    session_id = client.launch(name="validate", image=image, type=profile.type)
    say(f"launched {session_id}")
    try:
        status = _wait_started(client, session_id, profile, timeout)
        # Interactive sessions must become Running; a job must run to its end and succeed.
        ready = status == ("Running" if profile.interactive else "Succeeded")
        fix = "" if ready else _start_fix(status, profile, timeout)
        findings = [Finding("starts", ready, f"status {status} after up to {timeout:.0f} s", fix)]
        session = client.session(session_id)
        if ready and session.get("connectURL", "") not in ("", "not-applicable"):
            findings += _connection(client, session)
        findings.append(log_finding(client.logs(session_id), log_rules))
    finally:
        client.delete(session_id)
        say(f"deleted {session_id}")
    return findings


def explain_start(
    image: str,
    profile: Profile,
    findings: list[Finding],
    *,
    exited: str | None,
    where: str,
    waited: float,
    output: str,
) -> str:
    """Which part of the contract `image` broke when it did not start as a session of `profile`'s type, and what to
    change (the test kit's ContractBroken says it): how it failed (it `exited`, so worded; else nothing answered
    under the path `where` within `waited` seconds), the static `findings` that fail, and its last `output`."""
    lines = [f"{image} did not start as a CANFAR {profile.type} session ({profile.description}):"]
    if exited is not None:
        lines.append(f"  - {exited}: the {profile.type} launch must keep running")
    else:
        lines.append(
            f"  - nothing answered on port {profile.port} under {where} within {waited:.0f} s: "
            f"serve the {profile.type} contract there"
        )
    for finding in (f for f in findings if not f.ok):  # advice too: an EXPOSEd wrong port is the clue
        fix = f" -> {finding.fix}" if finding.fix else ""
        lines.append(f"  - {finding.check}{' (advice)' if finding.warning else ''}: {finding.detail}{fix}")
    lines.append(f"Its last output:\n{output}" if output else "It wrote no output.")
    return "\n".join(lines)


def _wait_started(client: EmulatorClient, session_id: str, profile: Profile, timeout: float) -> str:
    """The session's status once it left Pending (a job: once it ended), or at the deadline."""
    deadline = time.monotonic() + timeout
    waiting = ("Pending",) if profile.interactive else ("Pending", "Running")
    status = "Pending"
    while time.monotonic() < deadline:
        status = client.session(session_id)["status"]
        if status not in waiting:
            break
        time.sleep(0.25)
    return str(status)


def _start_fix(status: str, profile: Profile, timeout: float) -> str:
    """What to change when the session did not start as its type must."""
    if status == "Pending":
        return (
            f"nothing answered on port {profile.port} within {timeout:.0f} s: "
            f"serve the {profile.type} contract (see the logs)"
        )
    if status == "Running":  # a job still running
        return f"the job is still {status} after {timeout:.0f} s (use --timeout)"
    return "the container exited: see the logs"


def _connection(client: EmulatorClient, session: dict[str, Any]) -> list[Finding]:
    """The connect URL answered through the gateway, then the type's WebSocket (where it has one)."""
    url = session["connectURL"]
    answer = httpx.get(
        for_scripts(url, client.base_url), timeout=30, follow_redirects=True, headers=client.auth_headers
    )
    found = [
        Finding(
            "connect URL",
            answer.status_code < 400,
            f"{url} answered {answer.status_code} through the gateway",
            "" if answer.status_code < 400 else "answer the connect URL (relative URLs where the prefix is stripped)",
        )
    ]
    websocket = _check_websocket(session, client.base_url, client.auth_headers)
    return found if websocket is None else [*found, websocket]


def log_finding(logs: str, rules: logcheck.IgnoreRules) -> Finding:
    """The log gates over the session's output: the fatal lines shown, with what the image's rules ignored."""
    if rules.problems:
        return Finding(
            "logs",
            False,
            "the image's log ignore patterns cannot be used: " + "; ".join(rules.problems),
            f"write each as a Python regular expression (the {logcheck.IGNORE_LABEL} label, {logcheck.IGNORE_FILE})",
        )
    found = logcheck.scan(logs, rules)
    ignored = f" ({len(found.ignored)} ignored by the image's patterns)" if found.ignored else ""
    if found.ok:
        return Finding("logs", True, f"no fatal errors{ignored}")
    return Finding(
        "logs",
        False,
        f"{found.summary()}{ignored}:\n{found.show()}",
        "fix what the logs show (`emulate logs`); a line that is expected goes in the image's "
        f"{logcheck.IGNORE_LABEL} label or {logcheck.IGNORE_FILE}",
    )


def report(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]


def failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok and not f.warning]


_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(text: str) -> str:
    """XML 1.0 has no place for most control characters (an app's log lines carry colour escapes)."""
    return _NOT_IN_XML.sub("", text)


def junit_xml(image: str, session_type: str, findings: list[Finding], seconds: float, error: str = "") -> bytes:
    """The findings as a JUnit XML report (what CI systems show as test results): one test case per check;
    a failed check is a failure (its detail, then what to change), advice passes with its text in
    system-out; `error`: the validation could not run at all."""
    suite = ElementTree.Element(
        "testsuite",
        name=f"emulate validate {image} --type {session_type}",
        tests=str(len(findings) + (1 if error else 0)),
        failures=str(len(failures(findings))),
        errors="1" if error else "0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    classname = f"canfar.{session_type}"
    if error:
        case = ElementTree.SubElement(suite, "testcase", classname=classname, name="validate", time="0")
        ElementTree.SubElement(case, "error", message=_xml_text(error)).text = _xml_text(error)
    for finding in findings:
        case = ElementTree.SubElement(suite, "testcase", classname=classname, name=finding.check, time="0")
        if not finding.ok and not finding.warning:
            failure = ElementTree.SubElement(case, "failure", message=_xml_text(finding.detail))
            failure.text = _xml_text(f"{finding.detail}\nfix: {finding.fix}" if finding.fix else finding.detail)
        elif not finding.ok:
            advice = f"advice: {finding.detail}" + (f"\nfix: {finding.fix}" if finding.fix else "")
            ElementTree.SubElement(case, "system-out").text = _xml_text(advice)
    root = ElementTree.Element("testsuites")
    root.append(suite)
    ElementTree.indent(root)
    return bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"
