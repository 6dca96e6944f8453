"""up, down, status, token, serve."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.markup import escape

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, json_option, print_json
from emulator.errors import ConfigError
from emulator.settings import Settings
from emulator.users.file import ensure_users_file
from emulator.users.tokens import token_for

if TYPE_CHECKING:
    from docker import DockerClient

    from emulator.runtime.engine import EngineFacts


def _docker() -> DockerClient:
    from emulator.runtime.docker import connect

    return connect()


@click.command()
@click.option("--host", default=None, help="Host address to publish the gateway on (default 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Host port to publish the gateway on (default 8080)."
)
@click.option(
    "--auth",
    is_flag=True,
    default=None,
    help="Session routes admit only signed-in users (always, when --host is not loopback).",
)
@click.option(
    "--tls", is_flag=True, default=None, help="Serve HTTPS with Caddy's internal CA (says which CA to trust)."
)
@click.option(
    "--swarm",
    is_flag=True,
    default=None,
    help="Place sessions across the Docker Swarm this engine manages (EMULATE_ORCHESTRATOR=swarm).",
)
@click.option(
    "--build/--no-build",
    default=True,
    show_default=True,
    help="Build the service and gateway images when they are missing.",
)
@pass_settings
def up(
    settings: Settings,
    host: str | None,
    port: int | None,
    auth: bool | None,
    tls: bool | None,
    swarm: bool | None,
    build: bool,
) -> None:
    """Start the platform (service + gateway); idempotent.

    \b
    Example:
      emulate up --port 9090
    """
    from emulator.host.instance import InstanceContainers

    settings = _as_asked(settings, {"host": host, "port": port, "auth": auth, "tls": tls}, swarm)
    _own_users_file(settings)
    client = _docker()
    containers = InstanceContainers(settings, client)
    unenforced = limits_warning(settings, containers.facts)  # before anything starts: EMULATE_REQUIRE_LIMITS refuses
    _ensure_images(settings, client, build)
    with console_err.status(f"starting instance '{settings.instance}'"):
        url = containers.up()
    console.print(f"skaha-emulator is up at [bold]{url}[/bold]")
    advise_once(settings, "restart-advice-given", containers.restart_advice())
    advise_once(settings, "arc-advice-given", containers.facts.arc_owner_advice or None)
    _say_how_to_reach(settings, url)
    if unenforced:
        console_err.print(f"[yellow]warning:[/yellow] {escape(unenforced)}")


def _as_asked(settings: Settings, options: dict[str, object], swarm: bool | None) -> Settings:
    """The settings with the options `up` was given (those not given keep the settings' own)."""
    changes = {k: v for k, v in options.items() if v}
    if swarm:
        changes["orchestrator"] = "swarm"
    if changes:
        settings = settings.model_copy(update=changes)
    if settings.tls and not settings.tls_names:
        settings = settings.model_copy(update={"tls_names": certificate_names(settings)})
    return settings


def _own_users_file(settings: Settings) -> None:
    """The instance's users file, made on its first `up` (saying so where another instance has users)."""
    users_file, shared = settings.layout.users_file, settings.layout.shared_users_file
    if not users_file.exists() and shared is not None and shared.exists():
        console_err.print(
            f"instance '{settings.instance}' keeps its own users, in {users_file} (made now, with you as "
            f"its user); those in {shared} are the default instance's and do not sign in here: add this "
            "instance's with `emulate users add` or `emulate users import`"
        )
    ensure_users_file(users_file)


def _ensure_images(settings: Settings, client: DockerClient, build: bool) -> None:
    """The gateway's and service's images, built where missing (refused with --no-build)."""
    from emulator.host import images

    absent = images.missing(settings, ["gateway", "service"], client)
    if absent:
        if not build:
            raise ConfigError(f"images missing: {', '.join(absent)}; run `emulate images build`")
        with console_err.status("building images") as status:
            images.build(settings, absent, lambda line: status.update(line), client)


def _say_how_to_reach(settings: Settings, url: str) -> None:
    """Where the portal, the sessions and the API are, and who may open sessions."""
    if settings.tls:
        console.print(f"  HTTPS from the gateway's own CA: trust {settings.layout.tls_ca}")
        console.print(f"  (covers {', '.join(settings.tls_names)}; e.g. curl --cacert {settings.layout.tls_ca} {url}/)")
    console.print(f"  portal: {url}/science-portal/   (sign in: emulate users add NAME, or your token)")
    hosts = settings.session_hosts
    if hosts is not None:
        console.print(f"  sessions: each at a host of its own, {hosts.origin('<id>')}/session/...")
    if settings.auth_required:
        console.print("  session routes: signed-in users only (owner, or a group of theirs)")
    if hosts is None and settings.auth_required:
        console_err.print(
            "[yellow]note:[/yellow] sessions are served on the portal's own host: a page in a session a group "
            "member opens could act in the portal as that member. Give this server a wildcard DNS name and set "
            'EMULATE_SESSION_DOMAIN (README, "Security model").'
        )
    console.print(f"  API:   {url}/skaha/v0/session   (Authorization: Bearer $(emulate token))")
    console.print("  next:  emulate launch notebook")


def limits_warning(settings: Settings, facts: EngineFacts) -> str | None:
    """Never a promise the machine does not keep: where the engine cannot hold the sessions' limits, the
    paragraph that says so (or, with EMULATE_REQUIRE_LIMITS, a refusal with the reason); None where they hold."""
    return facts.unenforced_limits(settings.require_limits)


def advise_once(settings: Settings, marker_name: str, advice: str | None) -> None:
    """Say a piece of set-up advice on this instance's first `up` only (a marker file of that name remembers it)."""
    marker = settings.layout.state_path / marker_name
    if advice is None or marker.exists():
        return
    console_err.print(f"note: {escape(advice)}")
    marker.write_text(advice + "\n")


def certificate_names(settings: Settings) -> list[str]:
    """The names and addresses people may reach this machine by, for the HTTPS certificate; the first
    address is what a client that dials an address (and so names none) gets a certificate for."""
    import socket
    from urllib.parse import urlsplit

    import psutil

    if settings.host not in ("0.0.0.0", "::", ""):
        names = [settings.host, "localhost", "127.0.0.1"]  # bound to one address: that one first
    else:
        names = []
        for interface, addresses in psutil.net_if_addrs().items():
            if interface.startswith(("docker", "br-", "veth", "lo")):
                continue  # the engine's own bridges and loopback: nobody in the room browses to those
            names += [a.address for a in addresses if a.family == socket.AF_INET]
        names += ["127.0.0.1", "localhost"]
    names.append(socket.gethostname())
    if settings.public_url:
        names.append(urlsplit(settings.public_url).hostname or "")
    return [name for name in dict.fromkeys(names) if name]


@click.command()
@click.option(
    "--remove-sessions",
    is_flag=True,
    help="Also delete every session container and the session records (/arc is kept).",
)
@pass_settings
def down(settings: Settings, remove_sessions: bool) -> None:
    """Stop the platform. Sessions keep running unless --remove-sessions; /arc is never touched."""
    from emulator.host.instance import InstanceContainers

    removed = InstanceContainers(settings, _docker()).down(remove_sessions)
    console.print(f"stopped instance '{settings.instance}' ({len(removed)} container(s) removed)")


@click.command()
@json_option
@pass_settings
def status(settings: Settings, as_json: bool) -> None:
    """Show whether the platform is up, where, and how many session containers exist."""
    from emulator.host.instance import InstanceContainers

    state = InstanceContainers(settings, _docker()).status()
    if as_json:
        print_json(state.__dict__)
        return
    console.print(f"instance  {settings.instance}")
    console.print(f"url       {state.url}")
    console.print(f"engine    {state.engine}")
    console.print(f"service   {state.service}")
    console.print(f"gateway   {state.gateway}")
    console.print(f"sessions  {state.sessions}")
    if state.faults:
        console.print("faults    emulated on request (EMULATE_FAULTS=true): launches may ask for one")


@click.command()
@click.option("--user", default=None, help="Whose token (default: the first user in users.yaml).")
@pass_settings
def token(settings: Settings, user: str | None) -> None:
    """Print an API token (creating users.yaml with you as its user on first use).

    \b
    Example:
      curl -H "Authorization: Bearer $(emulate token)" http://127.0.0.1:8080/skaha/v0/session
    """
    ensure_users_file(settings.layout.users_file)
    click.echo(token_for(settings.layout.users_file, user))


@click.command()
@click.option("--in-container", is_flag=True, hidden=True, help="Run as the platform's service container.")
@pass_settings
def serve(settings: Settings, in_container: bool) -> None:
    """Run the service in the foreground (development); starts the gateway if needed."""
    import logging

    import uvicorn

    from emulator import naming
    from emulator.api.app import create_app
    from emulator.client.discovery import local_url
    from emulator.gateway.base import INTERNAL_PORT
    from emulator.host.instance import InstanceContainers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if in_container:
        bind = "0.0.0.0"
        upstream = f"{naming.service_container(settings.prefix)}:{settings.service_port}"
        gateway = f"http://{naming.gateway_container(settings.prefix)}:{INTERNAL_PORT}"
    else:
        ensure_users_file(settings.layout.users_file)
        bind = InstanceContainers(settings, _docker()).up_without_service()
        upstream = f"{bind}:{settings.service_port}"
        gateway = local_url(settings)
        console_err.print(f"serving instance '{settings.instance}' at {settings.base_url} (Ctrl-C stops)")
    # Idle upstream connections must outlive the gateway's (API_IDLE_TIMEOUT, 60 s): see gateway/caddy.py.
    uvicorn.run(
        create_app(settings, upstream, gateway),
        host=bind,
        port=settings.service_port,
        log_level="warning",
        timeout_keep_alive=120,
    )


COMMANDS = [up, down, status, token, serve]
