"""validate: will an image work as a CANFAR session of a type?"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, json_option, print_json
from emulator.profiles import load_profiles
from emulator.session_types import SESSION_TYPES
from emulator.settings import Settings

if TYPE_CHECKING:
    from emulator.host.validate import Finding


@click.command()
@click.argument("image")
@click.option("--type", "session_type", required=True, type=click.Choice(SESSION_TYPES), help="Session type.")
@click.option("--static-only", is_flag=True, help="Only inspect the image; do not launch it.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds the smoke run waits for readiness.")
@click.option(
    "--junit-xml",
    "junit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the checks as a JUnit XML report (for CI), whatever the outcome.",
)
@json_option
@pass_settings
def validate(
    settings: Settings,
    image: str,
    session_type: str,
    static_only: bool,
    timeout: float,
    junit: Path | None,
    as_json: bool,
) -> None:
    """Check an image against a session type's contract; exit 0 only when every check passes.

    \b
    Static checks: the type's port, required programs runnable by any uid, amd64, the type label.
    Smoke run (needs `emulate up`): launch under the full contract, readiness, the connect URL
    through the gateway, a WebSocket where the type uses one, fatal lines in the start-up logs
    (tracebacks, FATAL, panic:, out of memory; the image's io.skaha-emulator.log.ignore label and
    /etc/skaha-emulator/log-ignore file list lines to ignore).

    \b
    Example:
      emulate validate myorg/mynotebook:dev --type notebook
      emulate validate myorg/mynotebook:dev --type notebook --static-only --junit-xml validate.xml
    """
    from rich.markup import escape

    from emulator.errors import EmulatorError
    from emulator.host import validate as checks

    started = time.monotonic()
    findings: list[checks.Finding] = []
    try:
        findings = _run_checks(settings, image, session_type, static_only, timeout)
    except Exception as exc:  # the report says why there are no findings, then the error is raised as ever
        if junit is not None:
            why = exc.message if isinstance(exc, EmulatorError) else f"{type(exc).__name__}: {exc}"
            junit.write_bytes(checks.junit_xml(image, session_type, [], time.monotonic() - started, why))
        raise
    if junit is not None:
        junit.write_bytes(checks.junit_xml(image, session_type, findings, time.monotonic() - started))

    failed = checks.failures(findings)
    if as_json:
        print_json({"image": image, "type": session_type, "ok": not failed, "findings": checks.report(findings)})
    else:
        for finding in findings:
            mark = "[green]✓[/green]" if finding.ok else "[yellow]![/yellow]" if finding.warning else "[red]✗[/red]"
            # A log line's "[W 12:00]" is not markup: only the mark is.
            console.print(f"{mark} {finding.check:18} {escape(finding.detail)}", markup=True, highlight=False)
            if finding.fix:
                console.print(f"  {'':18} → {finding.fix}", highlight=False)
        verdict = "passes" if not failed else f"fails {len(failed)} check(s)"
        console.print(f"{image} {verdict} as a {session_type} session")
    if failed:
        raise SystemExit(1)


def _run_checks(settings: Settings, image: str, session_type: str, static_only: bool, timeout: float) -> list[Finding]:
    from emulator import labels
    from emulator.client.http import EmulatorClient
    from emulator.errors import ConfigError
    from emulator.host import logcheck
    from emulator.host import validate as checks
    from emulator.runtime.docker import connect

    profile = load_profiles(settings.profiles_dir).get(session_type)
    if profile is None:
        raise ConfigError(f"no profile for session type '{session_type}'")
    if profile.attaches_to is not None and not static_only:
        raise ConfigError(
            f"a {session_type} needs a {profile.attaches_to} to draw on: use --static-only, "
            f"or attach it to a {profile.attaches_to}"
        )
    helper = labels.platform_labels(settings.instance, labels.ROLE_HELPER)
    engine = connect()
    findings = checks.static_checks(engine, image, profile, helper)
    if not static_only:
        rules = logcheck.image_rules(engine, image, helper)  # what the image says its logs may carry
        with console_err.status(f"smoke run of {image} as {session_type}") as status:
            api = EmulatorClient(settings.layout)
            findings += checks.smoke_run(api, image, profile, timeout, status.update, log_rules=rules)
    return findings


COMMANDS = [validate]
