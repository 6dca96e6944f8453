"""launch, ps, info, logs, events, renew, snapshot, delete, open, context: skaha's API from the shell."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.progress import Progress

    from emulator.settings import Settings

from emulator.cli.context import pass_layout, pass_settings
from emulator.cli.output import console, console_err, json_option, print_json, real, table
from emulator.client.http import EmulatorClient
from emulator.errors import ConfigError, EmulatorError, Forbidden, NotFound
from emulator.layout import Layout
from emulator.session_types import SessionType

FINAL = ("Succeeded", "Completed", "Failed")


def _client(layout: Layout) -> EmulatorClient:
    return EmulatorClient(layout)


def _default_image(settings: Settings, session_type: str) -> str:
    from emulator.profiles import load_profiles  # the profile models: only a launch needs them

    profile = load_profiles(settings.profiles_dir).get(session_type)
    if profile is None:
        raise ConfigError(f"no profile for session type '{session_type}'; give --image")
    return profile.default_image


def _pull_detail(pull: dict[str, Any]) -> str:
    from rich.filesize import decimal

    size, layers = pull["bytes"], pull["layers"]
    moved = f"{decimal(size['current'])} of {decimal(size['total'])}, " if size["total"] else ""
    return f"{moved}{layers['done']} of {layers['total']} layers"


def _progress() -> Progress:
    """A spinner line for the session's status and, while its image is pulled, a bar for the pull."""
    from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
    from rich.text import Text

    class PullBar(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self._bar = BarColumn()

        def render(self, task: Task) -> RenderableType:
            return self._bar.render(task) if task.fields.get("pull") else Text("")

    columns = (SpinnerColumn(), TextColumn("{task.description}"), PullBar(), TextColumn("{task.fields[detail]}"))
    return Progress(*columns, console=real(console_err), transient=True)


# How the platform's Pulled event begins (core/pulls.py): a pull done before the wait first saw it.
PULLED = "Successfully pulled image"


def _status(session: dict[str, Any]) -> str:
    """Its status, and a waiting job's place in the queue (the platform's own field)."""
    if "jobsAhead" in session:
        return f"{session['status']} (queued, {session['jobsAhead']} ahead)"
    return str(session["status"])


def _started(session: dict[str, Any]) -> bool:
    """Running; or, for a job, already done (a short job may end before it is ever seen Running)."""
    done = session["status"] in ("Succeeded", "Completed") and session["type"] == SessionType.HEADLESS
    return bool(session["status"] == "Running" or done)


def wait_for_running(client: EmulatorClient, session_id: str, timeout: float) -> dict[str, Any]:
    """Poll until the session runs, showing the progress of any image pull it waits for."""
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        waiting = progress.add_task(f"waiting for {session_id} to start", total=None, detail="")
        pulling, told_pull = None, False
        while True:
            session = client.session(session_id)
            progress.update(waiting, description=f"{session_id}: {_status(session)}")
            if "jobsAhead" in session:
                deadline = time.monotonic() + timeout  # a job waiting in the queue: the wait counts from its start
            pull = client.pull_progress(session_id) if session["status"] == "Pending" else {}
            if pull and pulling is None:
                pulling = progress.add_task(f"pulling {pull['image']}", total=None, detail="", pull=True)
            if pull and pulling is not None:
                total = pull["bytes"]["total"] or None
                progress.update(pulling, completed=pull["bytes"]["current"], total=total, detail=_pull_detail(pull))
                deadline = time.monotonic() + timeout  # the wait for Running counts from the pull's end
            elif pulling is not None:  # the pull is over; a failed one is told with the session's events
                if session["status"] != "Failed":
                    progress.console.print(f"pulled {progress.tasks[pulling].description.removeprefix('pulling ')}")
                    told_pull = True
                progress.remove_task(pulling)
                pulling = None
            if _started(session):
                if not told_pull and PULLED in client.events(session_id):  # a pull over between two looks
                    progress.console.print(f"pulled {session['image']}")
                return session
            if session["status"] in FINAL:
                events = client.events(session_id).strip()
                raise EmulatorError(f"session {session_id} ended ({session['status']}) before it was ready:\n{events}")
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"session {session_id} was not Running after {timeout:.0f} s; "
                    f"see `emulate events {session_id}` and `emulate logs {session_id}`"
                )
            time.sleep(0.2)


# A desktop-app is attached to a desktop through the API (POST /session/<desktop id>/app), not launched.
LAUNCHABLE = [t.value for t in SessionType if t is not SessionType.DESKTOP_APP]


@click.command()
@click.argument("session_type", metavar="TYPE", type=click.Choice(LAUNCHABLE))
@click.option("--name", default=None, help="Session name (letters, digits, '-'); default: the type.")
@click.option("--image", default=None, help="Image to run (default: the profile's image).")
@click.option("--cores", type=int, default=None, help="CPU cores (one of `emulate context`); default flexible.")
@click.option("--ram", type=int, default=None, help="RAM in GB (one of `emulate context`); default flexible.")
@click.option("--gpus", type=int, default=None, help="Number of GPUs.")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="Environment (repeatable); skaha applies it to headless sessions only.",
)
@click.option(
    "--registry-auth",
    is_flag=True,
    help="Send the credentials `docker login` stored for the image's registry (a private image's pull).",
)
@click.option(
    "--fault",
    default=None,
    metavar="FAULT",
    help="Ask for a fault, on a platform started with EMULATE_FAULTS=true: pending, pull, oom:SECONDS or "
    "end:SECONDS[:EXIT_CODE] (with --no-wait, to see it happen).",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the session is Running.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for Running (after any image pull).")
@click.argument("command", nargs=-1, metavar="[-- CMD ARGS...]")
@pass_settings
def launch(
    settings: Settings,
    session_type: str,
    name: str | None,
    image: str | None,
    cores: int | None,
    ram: int | None,
    gpus: int | None,
    env: tuple[str, ...],
    registry_auth: bool,
    fault: str | None,
    wait: bool,
    timeout: float,
    command: tuple[str, ...],
) -> None:
    """Launch a session and print its connect URL.

    \b
    Example:
      emulate launch notebook --cores 2 --ram 4
      emulate launch notebook --name analysis --image skaha-emulator/notebook:latest
      emulate launch notebook --image registry.example.org/team/nb:1.0 --registry-auth
      emulate launch headless --fault oom:30 --no-wait -- sleep 600
    """
    if env and session_type != SessionType.HEADLESS:
        console_err.print("note: --env is ignored for non-headless sessions, as on CANFAR")
    client = _client(settings.layout)
    params = dict(
        name=name or session_type,
        image=image or _default_image(settings, session_type),
        type=session_type,
        cores=cores,
        ram=ram,
        gpus=gpus,
        env=list(env),
        fault=fault,
    )
    if command:
        params["cmd"] = command[0]
        params["args"] = " ".join(command[1:]) or None
    header = None
    if registry_auth:
        from emulator.client.registry_login import registry_auth_header

        header = registry_auth_header(str(params["image"]))
    session_id = client.launch(registry_auth=header, **params)
    if not wait:
        click.echo(session_id)
        return
    session = wait_for_running(client, session_id, timeout)
    console.print(f"{session_id} is {session['status']}")
    if session.get("connectURL") not in (None, "", "not-applicable"):
        click.echo(session["connectURL"])


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Include ended sessions.")
@json_option
@pass_layout
def ps(layout: Layout, show_all: bool, as_json: bool) -> None:
    """List your sessions."""
    sessions, unenforced, counts_cache = _client(layout).sessions_and_limits()
    hidden = 0
    if not show_all:
        shown = [s for s in sessions if s["status"] not in FINAL]
        hidden, sessions = len(sessions) - len(shown), shown
    if as_json:
        print_json(sessions)
        return
    gpus = any(s.get("requestedGPUCores", "<none>") not in ("<none>", "0") for s in sessions)
    table(
        ["ID", "APP", "NAME", "TYPE", "STATUS", "IMAGE", "CORES used/req", "RAM used/req"]
        + (["GPUS mem, util"] if gpus else [])
        + ["STARTED", "EXPIRES"],
        [
            [
                s["id"],
                "" if s.get("appid", "<none>") == "<none>" else s["appid"],
                s["name"],
                s["type"],
                _status(s),
                s["image"],
                _used_of(s.get("cpuCoresInUse"), s.get("requestedCPUCores")) + _not_held("CPU", unenforced),
                _used_of(s.get("ramInUse"), s.get("requestedRAM")) + _not_held("memory", unenforced),
                *([_gpus(s)] if gpus else []),
                s["startTime"],
                s["expiryTime"],
            ]
            for s in sessions
        ],
    )
    if hidden:
        # Failed sessions still count towards the session limit (as in skaha) until deleted.
        console_err.print(f"{hidden} ended session(s) not shown; `emulate ps -a` lists them")
    if unenforced and sessions:
        console_err.print(
            f"this engine does not enforce the sessions' {_listed(unenforced)} limits: a session may use more "
            "than it asked for (`emulate doctor` says why and what to do)"
        )
    if counts_cache and sessions:
        console_err.print(
            "RAM used includes the page cache on this engine (Podman's figures have no breakdown): "
            "it reads higher than what the session's programs hold"
        )


def _not_held(limit: str, unenforced: list[str]) -> str:
    return " (not enforced)" if limit in unenforced else ""


def _listed(names: list[str]) -> str:
    """["memory", "CPU", "pids"] -> "memory, CPU and pids"."""
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


def _used_of(used: str | None, requested: str | None) -> str:
    """'0.52 / 2' (skaha's own figures; '-' for what is not known, e.g. before the first sample)."""
    shown = "-" if used in (None, "<none>") else used
    return f"{shown} / {requested or '-'}"


def _gpus(session: dict[str, Any]) -> str:
    count = session.get("requestedGPUCores", "<none>")
    if count in ("<none>", "0"):
        return ""
    memory, utilization = session.get("gpuRAMInUse", "<none>"), session.get("gpuUtilization", "<none>")
    return f"{count}: {memory}, {utilization}".replace("<none>", "-")


@click.command()
@json_option
@pass_layout
def stats(layout: Layout, as_json: bool) -> None:
    """Show what runs on the platform and what it asked for, against this machine (view=stats)."""
    document = _client(layout).stats()
    if as_json:
        print_json(document)
        return
    counts, cores, ram = document["instances"], document["cores"], document["ram"]
    console.print(
        f"sessions {counts['session']}, desktop-apps {counts['desktopApp']}, jobs {counts['headless']} "
        f"(everyone's, {counts['total']} in all)"
    )
    console.print(f"cores    {cores['requestedCPUCores']:g} requested of {cores['cpuCoresAvailable']:g}")
    console.print(f"RAM      {ram['requestedRAM']} requested of {ram['ramAvailable']}")
    if "gpu" in document:
        console.print(f"GPUs     {document['gpu']['requestedGPU']} requested of {document['gpu']['gpuAvailable']}")
    if "host" in document:
        host = document["host"]
        console.print(f"machine  {host['cpuCoresInUse']:g} cores and {host['ramInUse']} of memory in use now")
    limits = document.get("limits") or {}
    unenforced = [
        name for name, key in (("memory", "memory"), ("CPU", "cpu"), ("pids", "pids")) if limits.get(key) is False
    ]
    if unenforced:
        console.print(f"limits   {_listed(unenforced)} not enforced by this engine: {limits.get('whyNot', '')}")


@click.command()
@json_option
@pass_layout
def nodes(layout: Layout, as_json: bool) -> None:
    """List the machines sessions run on, with their free cores and memory (several across a swarm)."""
    found = _client(layout).stats().get("nodes", [])
    if as_json:
        print_json(found)
        return
    rows = [
        [
            node["name"] + (" (manager)" if node["manager"] else ""),
            node["state"] + ("" if node["available"] else ", drained"),
            f"{node['cores'] - node['coresReserved']:g} / {node['cores']:g}",
            f"{node['ramGB'] - node['ramReservedGB']:.1f} / {node['ramGB']:.1f}G",
            str(node["sessions"]),
        ]
        for node in found
    ]
    columns = ["NODE", "STATE", "CORES free/all", "RAM free/all", "SESSIONS"]
    if any(node.get("gpus") for node in found):
        columns.append("GPUS free/all")
        for row, node in zip(rows, found, strict=True):
            row.append(f"{node['gpus'] - node['gpusReserved']} / {node['gpus']}")
    table(columns, rows)


@click.command()
@click.argument("session_id")
@pass_layout
def info(layout: Layout, session_id: str) -> None:
    """Show one session as skaha's JSON."""
    print_json(_client(layout).session(session_id))


@click.command()
@click.argument("session_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the session ends.")
@pass_layout
def logs(layout: Layout, session_id: str, follow: bool) -> None:
    """Print a session's output (stdout and stderr)."""
    client = _client(layout)
    shown = client.logs(session_id)
    click.echo(shown, nl=False)
    while follow:
        time.sleep(1)
        try:
            text = client.logs(session_id)
        except EmulatorError:
            return  # the session is gone
        if text.startswith(shown):
            click.echo(text[len(shown) :], nl=False)
        else:
            click.echo(text, nl=False)
        shown = text
        if client.session(session_id)["status"] in FINAL:
            return


@click.command()
@click.argument("session_id")
@pass_layout
def events(layout: Layout, session_id: str) -> None:
    """Print a session's events (scheduling, start, readiness, failures)."""
    click.echo(_client(layout).events(session_id), nl=False)


@click.command()
@click.argument("session_id")
@pass_layout
def renew(layout: Layout, session_id: str) -> None:
    """Reset a session's expiry to now + 4 days."""
    client = _client(layout)
    client.renew(session_id)
    console.print(f"{session_id} now expires at {client.session(session_id)['expiryTime']}")


@click.command()
@click.argument("session_id", metavar="ID")
@click.option(
    "--tag",
    metavar="NAME",
    default=None,
    help="The image's name[:tag] (under snapshot/<you>/); default: <image name>:<session name>-<UTC time>.",
)
@json_option
@pass_layout
def snapshot(layout: Layout, session_id: str, tag: str | None, as_json: bool) -> None:
    """Save a Running session as an image: what you installed outside /arc (never /arc or /scratch).

    The session pauses while its files are copied. The image is yours alone: in your
    `GET /image` and the portal's image menu, launched by you alone.

    \b
    Example:
      emulate snapshot k3x9q2ab
      emulate snapshot k3x9q2ab --tag astro-tools:v2
    """
    client = _client(layout)
    with console_err.status(f"saving {session_id} as an image (it pauses while its files are copied)"):
        name = client.snapshot(session_id, tag)
    session_type = client.session(session_id)["type"]
    launch_line = f"emulate launch {session_type} --image {name}"
    if as_json:
        print_json({"image": name, "session": session_id, "type": session_type, "launch": launch_line})
        return
    click.echo(name)
    console_err.print(f"saved {session_id} as {name}; launch it with: {launch_line}", highlight=False, soft_wrap=True)


@click.command()
@click.argument("session_ids", nargs=-1, required=True, metavar="ID...")
@pass_layout
def delete(layout: Layout, session_ids: tuple[str, ...]) -> None:
    """Delete sessions (container and record; /arc is kept)."""
    from rich.markup import escape

    client = _client(layout)
    failed = 0
    for session_id in session_ids:
        try:
            client.delete(session_id)
            console.print(f"deleted {session_id}")
        except (NotFound, Forbidden) as exc:  # their messages name the session already
            failed += 1
            console_err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        except EmulatorError as exc:
            failed += 1
            console_err.print(f"[red]error:[/red] {escape(f'{session_id}: {exc.message}')}", highlight=False)
    if failed:
        raise SystemExit(1)


@click.command(name="open")
@click.argument("session_id")
@pass_layout
def open_(layout: Layout, session_id: str) -> None:
    """Open a session's connect URL in your browser (and print it)."""
    import webbrowser

    url = _client(layout).session(session_id).get("connectURL", "not-applicable")
    if url in ("", "not-applicable"):
        raise EmulatorError(f"session {session_id} has no web interface")
    click.echo(url)
    webbrowser.open(url)


@click.command()
@json_option
@pass_layout
def context(layout: Layout, as_json: bool) -> None:
    """Show the cores, RAM and GPU options a launch may ask for."""
    document = _client(layout).context()
    if as_json:
        print_json(document)
        return
    console.print(
        f"cores  {document['cores']['options']} (flexible: {document['cores']['defaultRequest']}"
        f"-{document['cores']['defaultLimit']})"
    )
    console.print(
        f"ram GB {document['memoryGB']['options']} (flexible: {document['memoryGB']['defaultRequest']}"
        f"-{document['memoryGB']['defaultLimit']})"
    )
    console.print(f"gpus   {document['gpus']['options'] or 'none on this machine'}")


COMMANDS = [launch, ps, stats, nodes, info, logs, events, renew, snapshot, delete, open_, context]
