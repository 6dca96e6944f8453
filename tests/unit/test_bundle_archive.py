"""Hand-made bundles, as a hostile stranger would make them: every one refused in one line before anything
is installed. Real tar files built here; no engine (everything checked before the engine is in
`checks.inspect` and `checks.stage_profiles`)."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.bundle import signing
from emulator.bundle.__main__ import main as wheels_main
from emulator.bundle.archive import (
    IMAGES,
    MANIFEST,
    MAX_MANIFEST,
    PROFILES,
    Manifest,
    check_parts,
    hash_file,
    read_manifest,
    write,
)
from emulator.bundle.checks import MAX_YAML, inspect, stage_profiles, yaml_problem
from emulator.errors import ConfigError
from emulator.settings import REPO_ROOT, Settings

WHEEL = "wheels/demo-1.0-py3-none-any.whl"
IMAGE = {"name": "skaha-emulator/notebook:latest", "id": "sha256:" + "a" * 64}
ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 9)}]" for n in range(8)]
)


def _tar(add: Callable[[tarfile.TarFile], None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        add(archive)
    return buffer.getvalue()


def _file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _special(archive: tarfile.TarFile, name: str, kind: bytes, target: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    archive.addfile(info)


def _profiles(extra: Callable[[tarfile.TarFile], None] = lambda _: None) -> bytes:
    """This repository's profiles folder, as `bundle create` writes it, and whatever `extra` adds."""

    def add(archive: tarfile.TarFile) -> None:
        archive.add(REPO_ROOT / "profiles", arcname=".")
        extra(archive)

    return _tar(add)


def _saved_images() -> bytes:
    document = json.dumps([{"RepoTags": [IMAGE["name"]], "Layers": []}]).encode()
    return _tar(lambda archive: _file(archive, "manifest.json", document))


def _bundle(
    folder: Path,
    name: str = "good.bundle",
    profiles: bytes | None = None,
    images: list[dict[str, str]] | None = None,
    key: bytes | None = None,
) -> Path:
    """A bundle as `bundle create` makes it (`archive.write`), of hand-made parts."""
    contents = {IMAGES: _saved_images(), PROFILES: profiles or _profiles(), WHEEL: b"PK\x03\x04 a wheel"}
    parts: dict[str, Path] = {}
    for member, data in contents.items():
        parts[member] = folder / f"{name}.{member.replace('/', '_')}"
        parts[member].write_bytes(data)
    manifest = Manifest(
        created="2026-01-01T00:00:00+00:00",
        emulator_version="0.1.0",
        python="cp311-linux-x86_64",
        images=[IMAGE] if images is None else images,
        parts={member: hash_file(source) for member, source in parts.items()},
    )
    if key is not None:
        manifest.signature = signing.sign(manifest, key)
    write(folder / name, manifest, parts)
    return folder / name


def _raw(folder: Path, manifest: bytes, *extra: Callable[[tarfile.TarFile], None]) -> Path:
    """A tar of this manifest (and whatever `extra` adds), written as no emulator would."""
    path = folder / "hand-made.bundle"

    def add(archive: tarfile.TarFile) -> None:
        _file(archive, MANIFEST, manifest)
        for adding in extra:
            adding(archive)

    path.write_bytes(_tar(add))
    return path


def _document(path: Path) -> dict[str, object]:
    return dict(json.loads(read_manifest(path).to_json()))


def _refused(call: Callable[[], object], *words: str) -> str:
    """The ConfigError a call raises: one line, holding every word given."""
    with pytest.raises(ConfigError) as caught:
        call()
    message = caught.value.message
    assert "\n" not in message and message.isprintable(), message
    for word in words:
        assert word in message, message
    return message


def _stage(path: Path, scratch: Path) -> Path:
    manifest, where = inspect(path)
    return stage_profiles(path, manifest, where[PROFILES], scratch, lambda _: None)


def test_a_good_bundle_passes_every_check_and_its_profiles_load_aside(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    manifest, where = inspect(path)
    assert manifest.images == [IMAGE] and set(where) == {IMAGES, PROFILES, WHEEL}
    check_parts(path, manifest, where)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _stage(path, scratch)
    assert (scratch / "notebook.yaml").read_bytes() == (REPO_ROOT / "profiles" / "notebook.yaml").read_bytes()


# --- sizes and YAML ----------------------------------------------------------------------------------------


def test_a_manifest_over_its_cap_is_refused_from_its_declared_size_before_it_is_read(tmp_path: Path) -> None:
    header = tarfile.TarInfo(MANIFEST)
    header.size = 1 << 40  # a terabyte is declared; the file ends just after the header
    path = tmp_path / "huge.bundle"
    path.write_bytes(header.tobuf(tarfile.PAX_FORMAT) + b"{" * 512)
    _refused(lambda: read_manifest(path), "is refused", f"over the {MAX_MANIFEST}")
    padded = _raw(tmp_path, b" " * MAX_MANIFEST + json.dumps(_document(_bundle(tmp_path))).encode())
    _refused(lambda: inspect(padded), "is refused", "manifest is", "bytes")


def test_a_yaml_alias_bomb_is_refused_in_one_line_at_once(tmp_path: Path) -> None:
    assert yaml_problem(ALIAS_BOMB) == "YAML anchors and aliases are not allowed"
    bomb = _profiles(lambda archive: _file(archive, "./bomb.yaml", ALIAS_BOMB.encode()))
    path = _bundle(tmp_path, profiles=bomb)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    started = time.monotonic()
    _refused(lambda: _stage(path, scratch), "bomb.yaml", "aliases are not allowed", "nothing was installed")
    assert time.monotonic() - started < 5 and not any(scratch.iterdir())


@pytest.mark.parametrize(
    "text",
    ["[" * 200_000, "{" * 200_000, "- " * 100_000, "a:\n" + "".join(" " * n + "a:\n" for n in range(1, 400))],
)
def test_yaml_nested_deeper_than_any_profile_is_refused_quickly(text: str) -> None:
    started = time.monotonic()
    problem = yaml_problem(text) or ""
    assert problem.startswith(("YAML nested deeper than", "not YAML")), problem  # libyaml may stop it first
    assert time.monotonic() - started < 5


def test_a_yaml_file_over_its_cap_is_refused_from_its_header(tmp_path: Path) -> None:
    big = _profiles(lambda archive: _file(archive, "./big.yaml", b"# " + b"x" * MAX_YAML))
    path = _bundle(tmp_path, profiles=big)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _refused(lambda: _stage(path, scratch), "big.yaml", f"over the {MAX_YAML}")


# --- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../x",
        "x@md5:" + "0" * 32,
        "Skaha/Notebook:latest",
        "skaha/notebook:latest\n",
        "\x1b[31mred:1",
        "a b:1",
        "skaha//notebook:1",
        "skaha/.hidden:1",
        "x" * 600,
        "skaha/notebook@sha256:" + "0" * 64,
    ],
)
def test_image_names_the_grammar_refuses_never_reach_the_engine(tmp_path: Path, name: str) -> None:
    path = _bundle(tmp_path, images=[{"name": name, "id": IMAGE["id"]}])
    _refused(lambda: inspect(path), "is refused", "image")


@pytest.mark.parametrize(
    "member",
    ["wheels/../../evil.whl", "/etc/passwd", "wheels/.hidden.whl", "wheels/sub/x.whl", "wheels/a b.whl", "x.tar"],
)
def test_part_names_are_the_bundle_s_own_or_plain_wheel_names(tmp_path: Path, member: str) -> None:
    document = _document(_bundle(tmp_path))
    parts = document["parts"]
    assert isinstance(parts, dict)
    parts[member] = {"sha256": "0" * 64, "size": 0}
    path = _raw(tmp_path, json.dumps(document).encode())
    _refused(lambda: read_manifest(path), "is refused", "parts name a member a bundle does not hold")


# --- members -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("add", "words"),
    [
        (lambda a: _file(a, "/images.tar", b"x"), "absolute name"),
        (lambda a: _file(a, "../images.tar", b"x"), "climbs out"),
        (lambda a: _file(a, "wheels/../../x.whl", b"x"), "climbs out"),
        (lambda a: _special(a, IMAGES, tarfile.SYMTYPE, "/etc/passwd"), "a link"),
        (lambda a: _special(a, IMAGES, tarfile.LNKTYPE, MANIFEST), "a link"),
        (lambda a: _special(a, IMAGES, tarfile.CHRTYPE), "a device"),
        (lambda a: _special(a, IMAGES, tarfile.FIFOTYPE), "a device"),
    ],
)
def test_members_that_are_not_plain_files_under_listed_names_are_refused(
    tmp_path: Path, add: Callable[[tarfile.TarFile], None], words: str
) -> None:
    manifest = read_manifest(_bundle(tmp_path)).to_json()
    path = _raw(tmp_path, manifest, add)
    _refused(lambda: inspect(path), "is refused", words, "nothing was installed")


@pytest.mark.parametrize(
    ("add", "words"),
    [
        (lambda a: _file(a, "/abs.yaml", b"type: x\n"), "absolute name"),
        (lambda a: _file(a, "../outside.yaml", b"type: x\n"), "climbs out"),
        (lambda a: _file(a, "./skaha-system/../../outside.sh", b"x"), "climbs out"),
        (lambda a: _special(a, "./link.yaml", tarfile.SYMTYPE, "notebook.yaml"), "a link"),
        (lambda a: _special(a, "./escape", tarfile.SYMTYPE, "/etc"), "a link"),
        (lambda a: _special(a, "./hard.yaml", tarfile.LNKTYPE, "./notebook.yaml"), "a link"),
        (lambda a: _special(a, "./null", tarfile.CHRTYPE), "a device"),
        (lambda a: _file(a, "./.hidden.yaml", b"type: x\n"), "not a plain name"),
        (lambda a: _file(a, "./a b.yaml", b"type: x\n"), "not a plain name"),
    ],
)
def test_profiles_members_are_refused_before_anything_is_unpacked(
    tmp_path: Path, add: Callable[[tarfile.TarFile], None], words: str
) -> None:
    path = _bundle(tmp_path, profiles=_profiles(add))
    scratch = tmp_path / "deep" / "scratch"
    scratch.mkdir(parents=True)
    _refused(lambda: _stage(path, scratch), "profiles part holds", words, "nothing was installed")
    assert not any(scratch.iterdir())
    assert sorted(p.name for p in tmp_path.rglob("*") if "outside" in p.name or "abs" in p.name) == []


def test_create_leaves_hidden_files_and_backups_out_and_refuses_what_load_would(tmp_path: Path) -> None:
    from emulator.bundle.engine import _profiles_tar  # the engine's SDK is imported, never called

    folder = tmp_path / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", folder)
    for litter in (".notebook.yaml.swp", "notebook.yaml.before-bundle", "skaha-system/.DS_Store"):
        (folder / litter).write_text("x")
    (folder / ".git").mkdir()
    target = tmp_path / "profiles.tar"
    _profiles_tar(Settings(profiles_dir=folder), target)
    with tarfile.open(target) as archive:
        names = archive.getnames()
    assert "./notebook.yaml" in names and not [n for n in names if "/." in n or "before-bundle" in n]
    (folder / "anchored.yaml").write_text("a: &x 1\nb: *x\n")
    _refused(lambda: _profiles_tar(Settings(profiles_dir=folder), target), "cannot be bundled", "aliases")
    (folder / "anchored.yaml").unlink()
    (folder / "link.yaml").symlink_to(folder / "notebook.yaml")
    _refused(lambda: _profiles_tar(Settings(profiles_dir=folder), target), "cannot be bundled", "a link")


def test_a_manifest_that_names_only_images_is_read(tmp_path: Path) -> None:
    """As `emulate doctor --bundle` reads it (no parts needed there; `load` needs them)."""
    document = Manifest(created="2026-01-01T00:00:00Z", emulator_version="0", python="x", images=[IMAGE]).to_json()
    path = _raw(tmp_path, document)
    assert read_manifest(path).images == [IMAGE]
    _refused(lambda: inspect(path), "lists no images.tar")


def test_profiles_that_do_not_load_are_said_in_one_line_naming_the_file(tmp_path: Path) -> None:
    broken = b"type: notebook\nport: [a, port, this, emulator, cannot, read]\n"
    path = _bundle(tmp_path, profiles=_profiles(lambda a: _file(a, "./notebook.yaml", broken)))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    message = _refused(lambda: _stage(path, scratch), "profiles do not load here", "notebook.yaml")
    assert str(scratch) not in message


# --- damaged and foreign files -----------------------------------------------------------------------------


def _with(path: Path, change: Callable[[dict[str, object]], object]) -> bytes:
    document = _document(path)
    change(document)
    return json.dumps(document).encode()


def _parts(document: dict[str, object]) -> dict[str, dict[str, object]]:
    parts = document["parts"]
    assert isinstance(parts, dict)
    return parts


BAD_MANIFESTS: dict[str, Callable[[Path], bytes]] = {
    "not JSON": lambda _: b"{not json",
    "not UTF-8": lambda _: b"\xff\xfe{}",
    "nested deep": lambda _: b"[" * 200_000 + b"]" * 200_000,
    "a list": lambda _: b"[]",
    "no format": lambda p: _with(p, lambda d: d.pop("format")),
    "version 2": lambda p: _with(p, lambda d: d.update(version=2)),
    "no images": lambda p: _with(p, lambda d: d.pop("images")),
    "images a string": lambda p: _with(p, lambda d: d.update(images="x")),
    "an image a list": lambda p: _with(p, lambda d: d.update(images=[["x"]])),
    "an image's id a number": lambda p: _with(p, lambda d: d.update(images=[{"name": "x:1", "id": 5}])),
    "no parts": lambda p: _with(p, lambda d: d.pop("parts")),
    "a size as text": lambda p: _with(p, lambda d: _parts(d)[IMAGES].update(size="12")),
    "a size below zero": lambda p: _with(p, lambda d: _parts(d)[IMAGES].update(size=-1)),
    "a size of true": lambda p: _with(p, lambda d: _parts(d)[IMAGES].update(size=True)),
    "a size of 1e999": lambda p: _with(p, lambda d: _parts(d)[IMAGES].update(size=float("inf"))),
    "a short checksum": lambda p: _with(p, lambda d: _parts(d)[IMAGES].update(sha256="abc")),
    "a date with a newline": lambda p: _with(p, lambda d: d.update(created="2026\nevil")),
    "a signature of another scheme": lambda p: _with(p, lambda d: d.update(signature={"scheme": "rot13"})),
    "no profiles part": lambda p: _with(p, lambda d: _parts(d).pop(PROFILES)),
}


@pytest.mark.parametrize("kind", sorted(BAD_MANIFESTS))
def test_a_manifest_of_the_wrong_shape_is_one_line(tmp_path: Path, kind: str) -> None:
    path = _raw(tmp_path, BAD_MANIFESTS[kind](_bundle(tmp_path)))
    _refused(lambda: inspect(path), str(path))


def test_truncated_foreign_and_corrupted_files_are_one_line(tmp_path: Path) -> None:
    good = _bundle(tmp_path)
    data = good.read_bytes()
    for cut in (len(data) // 2, 700, 100, 0):
        truncated = tmp_path / f"cut-{cut}.bundle"
        truncated.write_bytes(data[:cut])

        def check(path: Path = truncated) -> None:
            manifest, where = inspect(path)
            check_parts(path, manifest, where)

        _refused(check, str(truncated))
    noise = tmp_path / "noise.bundle"
    noise.write_bytes(os.urandom(4096))
    _refused(lambda: inspect(noise), "is not a skaha-emulator bundle")
    _refused(lambda: inspect(tmp_path), "cannot read")
    _refused(lambda: inspect(tmp_path / "absent.bundle"), "no bundle at")
    manifest, where = inspect(good)
    offset, size = where[PROFILES]
    flipped = bytearray(data)
    flipped[offset + size // 2] ^= 0xFF
    corrupted = tmp_path / "corrupted.bundle"
    corrupted.write_bytes(bytes(flipped))
    _refused(lambda: check_parts(corrupted, *inspect(corrupted)), f"{PROFILES} does not match its SHA-256")


# --- signatures --------------------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> tuple[bytes, bytes]:
    mine, other = tmp_path / "mine.key", tmp_path / "other.key"
    signing.make_key(mine)
    signing.make_key(other)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o600
    return signing.read_key(mine), signing.read_key(other)


def test_a_signed_bundle_verifies_with_its_key_and_loads_without_one(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    mine, _ = keys
    path = _bundle(tmp_path, key=mine)
    manifest, where = inspect(path, mine)
    assert manifest.signature is not None and manifest.signature.key == signing.key_id(mine)
    check_parts(path, manifest, where)
    assert inspect(path)[0].signature == manifest.signature  # without --verify: read, not checked


def test_verify_refuses_the_unsigned_the_other_key_s_and_the_altered(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    mine, other = keys
    _refused(lambda: inspect(_bundle(tmp_path, "unsigned.bundle"), mine), "is not signed", "--verify")
    signed = _bundle(tmp_path, "signed.bundle", key=mine)
    _refused(lambda: inspect(signed, other), "signed with another key")

    # A part swapped after signing: the signed manifest's checksum no longer matches it.
    data = bytearray(signed.read_bytes())
    offset, size = inspect(signed)[1][PROFILES]
    data[offset + size // 2] ^= 0xFF
    swapped = tmp_path / "swapped.bundle"
    swapped.write_bytes(bytes(data))
    _refused(lambda: check_parts(swapped, *inspect(swapped, mine)), "does not match its SHA-256")

    # ... and the manifest changed to match it: the signature no longer does.
    def rehash(document: dict[str, object]) -> None:
        _parts(document)[IMAGES]["sha256"] = "0" * 64
        document["images"] = [{"name": "evil/image:1", "id": IMAGE["id"]}]

    altered = _raw(tmp_path, _with(signed, rehash))
    _refused(lambda: inspect(altered, mine), "altered after it was signed")


def test_keys_are_never_overwritten_and_passwords_are_not_keys(tmp_path: Path) -> None:
    key = tmp_path / "workshop.key"
    ident = signing.make_key(key)
    before = key.read_bytes()
    _refused(lambda: signing.make_key(key), "exists already")
    assert key.read_bytes() == before and signing.key_id(signing.read_key(key)) == ident
    (tmp_path / "password").write_text("hunter2\n")
    _refused(lambda: signing.read_key(tmp_path / "password"), "is not a bundle key")
    _refused(lambda: signing.read_key(tmp_path / "absent.key"), "no key file", "bundle keygen")


def test_the_wheels_of_a_bundle_not_signed_with_the_key_are_never_written(
    tmp_path: Path, keys: tuple[bytes, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    mine, other = keys
    key_file = tmp_path / "other.key"
    path = _bundle(tmp_path, key=mine)
    out = tmp_path / "wheels"
    assert wheels_main(["wheels", str(path), str(out), "--verify", str(key_file)]) == 1
    assert "signed with another key" in capsys.readouterr().err and not out.exists()
    assert wheels_main(["wheels", str(path), str(out), "--verify", str(tmp_path / "mine.key")]) == 0
    assert [p.name for p in out.iterdir()] == ["demo-1.0-py3-none-any.whl"]


def test_the_cli_says_a_refusal_in_one_line_with_no_traceback(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    """Refused before the engine is asked anything (no engine answers here, and none is needed)."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "EMULATE_INSTANCE": "pytest-bundle-unit"}
    unsigned = _bundle(tmp_path, "unsigned.bundle")
    bad_name = _bundle(tmp_path, "bad.bundle", images=[{"name": "../../x", "id": IMAGE["id"]}])
    for args in (
        ["load", str(unsigned), "--verify", str(tmp_path / "mine.key")],
        ["load", str(bad_name)],
        ["ls", str(bad_name)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "emulator", "bundle", *args], env=env, capture_output=True, text=True
        )
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "is refused" in result.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "emulator", "bundle", "ls", str(unsigned)], env=env, capture_output=True, text=True
    )
    assert listing.returncode == 0 and "unsigned: as trusted as wherever it came from" in listing.stdout
