"""What image builds trust with no variable set: the host's system store and pip's configured `cert`."""

from pathlib import Path

import pytest

from emulator.host.images import ca_sources, describe_ca, extra_ca, pip_cert, pip_config_files, system_store
from emulator.settings import Settings

SYSTEM = b"-----BEGIN CERTIFICATE-----\nsystem\n-----END CERTIFICATE-----\n"
PROXY = b"-----BEGIN CERTIFICATE-----\nproxy\n-----END CERTIFICATE-----"  # no final newline: one is added


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """A home, an /etc and a system store of its own, nothing in them yet."""
    paths = {name: tmp_path / name for name in ("home", "etc", "certs")}
    for path in paths.values():
        path.mkdir()
    (paths["certs"] / "ca-certificates.crt").write_bytes(SYSTEM)
    (paths["certs"] / "proxy.pem").write_bytes(PROXY)
    return paths


def pip_conf(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def test_a_user_whose_pip_trusts_the_proxy_gets_both_stores_in_image_builds(host: dict[str, Path]) -> None:
    conf = pip_conf(host["home"] / ".config/pip/pip.conf", f"[global]\ncert = {host['certs']}/proxy.pem\n")
    environ = {"HOME": str(host["home"])}
    system = [host["certs"] / "missing.crt", host["certs"] / "ca-certificates.crt"]
    sources = ca_sources(Settings(extra_ca_bundle=None), environ, system, host["etc"])
    assert [(s.path, s.origin) for s in sources] == [
        (host["certs"] / "ca-certificates.crt", "the system store"),
        (host["certs"] / "proxy.pem", f"cert in {conf}"),
    ]
    # Concatenated, system store first, each ending its line (a PEM without a final newline would glue).
    assert extra_ca(Settings(extra_ca_bundle=None), environ, system, host["etc"]) == SYSTEM + PROXY + b"\n"
    line = describe_ca(sources)
    assert line.startswith("trusting") and "the system store" in line and str(conf) in line and "\n" not in line


def test_pip_naming_the_system_store_is_read_once(host: dict[str, Path]) -> None:
    store = host["certs"] / "ca-certificates.crt"
    conf = pip_conf(host["etc"] / "pip.conf", f"[global]\ncert = {store}\n")
    environ = {"HOME": str(host["home"])}
    assert extra_ca(Settings(extra_ca_bundle=None), environ, [store], host["etc"]) == SYSTEM
    sources = ca_sources(Settings(extra_ca_bundle=None), environ, [store], host["etc"])
    assert [(s.path, s.origin) for s in sources] == [(store, f"the system store, cert in {conf}")]


def test_a_bundle_named_outright_is_trusted_alone(host: dict[str, Path]) -> None:
    """pip with PIP_CERT set ignores pip.conf: the build trusts what the host's tools do."""
    pip_conf(host["home"] / ".pip/pip.conf", f"[global]\ncert = {host['certs']}/proxy.pem\n")
    environ = {"HOME": str(host["home"]), "PIP_CERT": str(host["certs"] / "ca-certificates.crt")}
    sources = ca_sources(Settings(extra_ca_bundle=None), environ, [], host["etc"])
    assert [(s.path, s.origin) for s in sources] == [(host["certs"] / "ca-certificates.crt", "PIP_CERT")]


def cert(environ: dict[str, str], etc: Path) -> tuple[Path, str] | None:
    found = pip_cert(environ, etc)
    return None if found is None else (found.path, found.origin)


def test_pip_configuration_files_win_as_pip_decides(host: dict[str, Path]) -> None:
    home, etc = host["home"], host["etc"]
    proxy, store = host["certs"] / "proxy.pem", host["certs"] / "ca-certificates.crt"
    environ = {"HOME": str(home), "XDG_CONFIG_DIRS": str(etc / "xdg")}
    xdg = pip_conf(etc / "xdg/pip/pip.conf", f"[global]\ncert = {store}\n")
    assert cert(environ, etc) == (store, f"cert in {xdg}")
    machine = pip_conf(etc / "pip.conf", f"[global]\ncert = {proxy}\n")  # /etc/pip.conf over /etc/xdg's
    assert cert(environ, etc) == (proxy, f"cert in {machine}")
    legacy = pip_conf(home / ".pip/pip.conf", f"[global]\ncert = {store}\n")  # the user's over the machine's
    assert cert(environ, etc) == (store, f"cert in {legacy}")
    xdg_home = {**environ, "XDG_CONFIG_HOME": str(home / "cfg")}
    new = pip_conf(home / "cfg/pip/pip.conf", f"[global]\ncert = {proxy}\n")  # the new user file over the legacy
    assert cert(xdg_home, etc) == (proxy, f"cert in {new}")
    # PIP_CONFIG_FILE wins and, when it exists, hides the user's files (as in pip).
    named = pip_conf(home / "named.conf", "[global]\nindex-url = https://pypi.example/simple\n")
    with_named = {**xdg_home, "PIP_CONFIG_FILE": str(named)}
    assert new not in pip_config_files(with_named, etc) and legacy not in pip_config_files(with_named, etc)
    assert cert(with_named, etc) == (proxy, f"cert in {machine}")
    # An [install] cert anywhere beats a [global] one; os.devnull reads nothing at all.
    pip_conf(xdg, f"[install]\ncert = {store}\n")
    assert cert(with_named, etc) == (store, f"cert in {xdg}")
    assert cert({**environ, "PIP_CONFIG_FILE": "/dev/null"}, etc) is None


def test_a_pip_cert_that_names_no_file_gives_nothing(host: dict[str, Path]) -> None:
    pip_conf(host["home"] / ".config/pip/pip.conf", "[global]\ncert = ~/nowhere.pem\n")
    pip_conf(host["etc"] / "pip.conf", f"[global]\ncert = {host['certs']}/proxy.pem\n")
    # pip uses the user's value (a missing file), never falls back to the machine's: neither do builds.
    assert pip_cert({"HOME": str(host["home"])}, host["etc"]) is None


def test_the_system_store_is_openssls_file_else_a_distributions_usual_one(tmp_path: Path) -> None:
    fedora = tmp_path / "ca-bundle.crt"
    fedora.write_bytes(SYSTEM)
    found = system_store([tmp_path / "cert.pem", fedora])
    assert found is not None and found.path == fedora and found.origin == "the system store"
    assert system_store([tmp_path / "cert.pem"]) is None
    assert "Debian's own CAs only" in describe_ca([])
