import tarfile
from pathlib import Path

import pytest

from emulator.errors import ConfigError
from emulator.host.images import CaSource, build_context, ca_sources, default_recipes, extra_ca, named_ca, recipes
from emulator.settings import Settings


def test_recipes_that_need_other_registries_are_built_only_when_named() -> None:
    settings = Settings()
    found = recipes(settings)
    assert {"carta", "firefly"} <= {name for name, r in found.items() if r.external}
    defaults = default_recipes(settings)
    assert "carta" not in defaults and "firefly" not in defaults
    assert defaults[:3] == ["base", "gateway", "service"]  # the platform's own images first
    assert {"notebook", "desktop", "ds9", "terminal", "marimo"} <= set(defaults)


def test_a_recipe_built_from_another_of_ours_is_built_after_it() -> None:
    settings = Settings()
    assert recipes(settings)["astro-notebook"].needs == ("notebook",)
    assert recipes(settings)["notebook"].needs == ("base",)


def test_builds_trust_the_ca_bundle_the_hosts_tools_already_use(tmp_path: Path) -> None:
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\nproxy\n-----END CERTIFICATE-----\n")
    settings = Settings(extra_ca_bundle=None)
    no_etc = tmp_path / "no-etc"  # with system=[]: this machine's own stores out of the way
    # Only SSL_CERT_FILE set: picked up, and baked into the base recipe's build context.
    assert named_ca(settings, {"SSL_CERT_FILE": str(bundle)}) == CaSource(bundle, "SSL_CERT_FILE")
    ca = extra_ca(settings, {"SSL_CERT_FILE": str(bundle)}, system=[], etc=no_etc)
    with tarfile.open(fileobj=build_context(recipes(settings)["base"], ca)) as archive:
        member = archive.extractfile("extra-ca.crt")
        assert member is not None and member.read() == bundle.read_bytes()
    # The order: the emulator's own override, then pip's, requests', OpenSSL's.
    other = tmp_path / "other.pem"
    environ = {"SSL_CERT_FILE": str(other), "REQUESTS_CA_BUNDLE": str(other), "PIP_CERT": str(bundle)}
    assert named_ca(settings, environ) == CaSource(bundle, "PIP_CERT")
    assert named_ca(Settings(extra_ca_bundle=other), environ) == CaSource(other, "EMULATE_EXTRA_CA_BUNDLE")
    home = {"HOME": str(tmp_path / "home")}
    assert ca_sources(settings, home, system=[], etc=no_etc) == []
    assert extra_ca(settings, home, system=[], etc=no_etc) == b""


def test_a_missing_bundle_named_for_us_is_an_error_and_one_named_for_other_tools_is_passed_over(
    tmp_path: Path,
) -> None:
    missing, present = tmp_path / "missing.pem", tmp_path / "present.pem"
    present.write_text("pem")
    with pytest.raises(ConfigError, match=r"\(EMULATE_EXTRA_CA_BUNDLE\) cannot be read"):
        extra_ca(Settings(extra_ca_bundle=missing), {})
    environ = {"PIP_CERT": str(missing), "SSL_CERT_FILE": str(present)}
    assert named_ca(Settings(extra_ca_bundle=None), environ) == CaSource(present, "SSL_CERT_FILE")
