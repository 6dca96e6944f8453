"""validate: will an image work as a CANFAR session of a type?"""

from __future__ import annotations

import click

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, json_option, print_json
from emulator.profiles import SESSION_TYPES, load_profiles
from emulator.settings import Settings


@click.command()
@click.argument("image")
@click.option("--type", "session_type", required=True, type=click.Choice(SESSION_TYPES), help="Session type.")
@click.option("--static-only", is_flag=True, help="Only inspect the image; do not launch it.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds the smoke run waits for readiness.")
@json_option
@pass_settings
def validate(
    settings: Settings, image: str, session_type: str, static_only: bool, timeout: float, as_json: bool
) -> None:
    """Check an image against a session type's contract; exit 0 only when every check passes.

    \b
    Static checks: the type's port, required programs runnable by any uid, amd64, the type label.
    Smoke run (needs `emulate up`): launch under the full contract, readiness, the connect URL
    through the gateway, a WebSocket where the type uses one, fatal errors in the logs.

    \b
    Example:
      emulate validate myorg/mynotebook:dev --type notebook
    """
    from emulator import validate as checks
    from emulator.client import EmulatorClient
    from emulator.errors import ConfigError
    from emulator.runtime.docker import connect

    profile = load_profiles(settings.profiles_dir).get(session_type)
    if profile is None:
        raise ConfigError(f"no profile for session type '{session_type}'")
    if profile.attaches_to is not None and not static_only:
        raise ConfigError(
            f"a {session_type} needs a {profile.attaches_to} to draw on: use --static-only, "
            f"or attach it to a {profile.attaches_to}"
        )
    from emulator import labels

    helper = labels.platform_labels(settings.instance, labels.ROLE_HELPER)
    findings = checks.static_checks(connect(), image, profile, helper)
    if not static_only:
        with console_err.status(f"smoke run of {image} as {session_type}") as status:
            findings += checks.smoke_run(EmulatorClient(settings.layout), image, profile, timeout, status.update)
    failed = checks.failures(findings)
    if as_json:
        print_json({"image": image, "type": session_type, "ok": not failed, "findings": checks.report(findings)})
    else:
        for finding in findings:
            mark = "[green]✓[/green]" if finding.ok else "[yellow]![/yellow]" if finding.warning else "[red]✗[/red]"
            console.print(f"{mark} {finding.check:18} {finding.detail}", markup=True, highlight=False)
            if finding.fix:
                console.print(f"  {'':18} → {finding.fix}", highlight=False)
        verdict = "passes" if not failed else f"fails {len(failed)} check(s)"
        console.print(f"{image} {verdict} as a {session_type} session")
    if failed:
        raise SystemExit(1)


COMMANDS = [validate]
