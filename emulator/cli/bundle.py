"""bundle create | load | ls | keygen: images, profiles and wheels carried to machines with no network."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from emulator.cli.context import pass_settings
from emulator.cli.output import console, console_err, json_option, print_json, real, table
from emulator.settings import Settings


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=real(console_err),
        transient=True,
    )


@click.group()
def bundle() -> None:
    """Carry images, profiles and the emulator's wheels to machines with no network."""


F = TypeVar("F", bound=Callable[..., Any])


def _key_option(flag: str, help: str) -> Callable[[F], F]:
    """A KEYFILE option (bundle keygen's key), passed as `key_file`."""
    return click.option(flag, "key_file", metavar="KEYFILE", type=click.Path(dir_okay=False, path_type=Path), help=help)


@bundle.command()
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("names", nargs=-1, metavar="[IMAGE...]")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Images of this session type's profile.")
@click.option(
    "--without-platform", is_flag=True, help="Leave out the service and gateway images (for machines that have them)."
)
@click.option(
    "--without-wheels", is_flag=True, help="Leave out the wheels (then `make up BUNDLE=` cannot set up the venv)."
)
@_key_option(
    "--sign", "Sign the bundle with this key (emulate bundle keygen) so `bundle load --verify` can tell it is yours."
)
@pass_settings
def create(
    settings: Settings,
    path: Path,
    names: tuple[str, ...],
    types: tuple[str, ...],
    without_platform: bool,
    without_wheels: bool,
    key_file: Path | None,
) -> None:
    """Write one file holding images (docker save), the profiles, the wheels and a checksummed manifest.

    With no IMAGE and no --type: every image the profiles name that is here. CANFAR names given
    with `emulate images tag` are kept.

    \b
    Example:
      emulate bundle create workshop.bundle
      emulate bundle create notebooks.bundle --type notebook images.canfar.net/skaha/astroml:latest
      emulate bundle create workshop.bundle --sign workshop.key
    """
    from emulator.bundle import engine, signing
    from emulator.runtime.docker import connect

    key = signing.read_key(key_file) if key_file else None  # before any work: a wrong key file says so now
    client = connect()
    choice = engine.choose_images(settings, client, types, names, with_platform=not without_platform)
    for name in choice.skipped:
        console_err.print(f"not here, left out: {name}")
    with _progress() as progress:
        saving = progress.add_task("saving images", total=None)
        writing = progress.add_task("writing the bundle", total=None, visible=False)

        def say(line: str) -> None:
            progress.console.print(line)
            if line.startswith("writing"):
                progress.update(saving, visible=False)
                progress.update(writing, visible=True)

        manifest = engine.create(
            settings,
            path,
            choice,
            with_wheels=not without_wheels,
            say=say,
            saving=lambda n: progress.advance(saving, n),
            writing=lambda n: progress.advance(writing, n),
            client=client,
            key=key,
        )
    size = path.stat().st_size
    console.print(
        f"wrote {path} ({size / 1e9:.2f} GB): {len(manifest.images)} images, profiles, {len(manifest.wheels)} wheels"
    )
    if manifest.signature:
        console.print(f"  signed with key {manifest.signature.key}: emulate bundle load {path} --verify {key_file}")
    console.print(f"  load it where there is no network: emulate bundle load {path}   (or: make up BUNDLE={path})")


@bundle.command()
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@_key_option("--verify", "Refuse the bundle unless it is signed with this key and unaltered since.")
@pass_settings
def load(settings: Settings, path: Path, key_file: Path | None) -> None:
    """Check the bundle and every checksum, then load the images and install the profiles (twice changes
    nothing). Unless --verify says whose it is, a bundle is as trusted as wherever it came from.

    \b
    Example:
      emulate bundle load workshop.bundle
      emulate bundle load workshop.bundle --verify workshop.key
    """
    from emulator.bundle import engine, signing
    from emulator.bundle.archive import read_manifest

    key = signing.read_key(key_file) if key_file else None
    manifest = read_manifest(path)
    total = sum(part.size for part in manifest.parts.values())
    with _progress() as progress:
        task = progress.add_task("checking and loading", total=total)
        done = engine.load(
            settings,
            path,
            lambda n: progress.advance(task, n),
            lambda n: progress.update(task, advance=n, description="loading images (checked as they stream)"),
            key=key,
        )
    if manifest.signature and key:
        console.print(f"{path}: signature verified (key {manifest.signature.key})")
    elif manifest.signature:
        console_err.print(f"{path}: signed with key {manifest.signature.key}, not verified (no --verify KEYFILE)")
    if not done.changed:
        console.print(f"{path}: everything in it is here already; nothing changed")
        return
    for name in done.images:
        console.print(f"image    {name}")
    for name in done.profiles_added:
        console.print(f"profile  {name} (added)")
    for name in done.profiles_replaced:
        console.print(f"profile  {name} (replaced; the previous one is {name}{engine.BACKUP_SUFFIX})")


@bundle.command(name="ls")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def ls(path: Path, as_json: bool) -> None:
    """Show what a bundle holds (its manifest; nothing is loaded).

    What `bundle load` checks before it reads the parts is checked here too (names, sizes, members)."""
    from emulator.bundle.checks import inspect

    manifest, _ = inspect(path)
    if as_json:
        print_json(json.loads(manifest.to_json()))
        return
    console.print(f"{path}: made {manifest.created} by skaha-emulator {manifest.emulator_version}")
    signed = f"signed with key {manifest.signature.key} (check it with load --verify)" if manifest.signature else ""
    console.print(f"  {signed or 'unsigned: as trusted as wherever it came from'}")
    table(["IMAGE", "ID"], [[i["name"], i["id"].removeprefix("sha256:")[:12]] for i in manifest.images])
    total = sum(p.size for p in manifest.parts.values())
    console.print(f"profiles, {len(manifest.wheels)} wheels for {manifest.python}; {total / 1e9:.2f} GB in all")


@bundle.command()
@click.argument("path", metavar="KEYFILE", type=click.Path(dir_okay=False, path_type=Path))
def keygen(path: Path) -> None:
    """Write a new random key for `bundle create --sign` and `bundle load --verify` (mode 0600).

    The key is a shared secret (HMAC-SHA256): whoever holds it can also sign, so carry it to the
    loading machines apart from the bundle, and never beside it.

    \b
    Example:
      emulate bundle keygen workshop.key
    """
    from emulator.bundle import signing

    console.print(f"wrote {path} (key {signing.make_key(path)}); keep it apart from the bundles it signs")


COMMANDS = [bundle]
