"""Settings from EMULATE_* variables: a bad value is refused with a sentence that names the variable."""

from __future__ import annotations

import pytest

from emulator.errors import ConfigError
from emulator.settings import load_settings


def test_a_bad_value_names_its_variable_and_what_it_should_be(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMULATE_GATEWAY_CPUS", "0")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert refused.value.message == (
        "invalid setting: EMULATE_GATEWAY_CPUS='0': Input should be greater than or equal to 1"
    )


def test_every_bad_value_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMULATE_GATEWAY_CPUS", "two")
    monkeypatch.setenv("EMULATE_ARC_NFS", "nfs-without-a-path")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = refused.value.message
    assert "\n" not in message and "EMULATE_GATEWAY_CPUS='two'" in message
    assert "EMULATE_ARC_NFS='nfs-without-a-path': an NFS export is server:/path" in message


def test_a_bad_item_of_a_list_is_named_by_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMULATE_TLS_NAMES", '["localhost", 7]')
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert refused.value.message == "invalid setting: EMULATE_TLS_NAMES[1]=7: Input should be a valid string"


def test_the_gateway_runs_on_one_core_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMULATE_GATEWAY_CPUS", raising=False)
    assert load_settings().gateway_cpus == 1
    monkeypatch.setenv("EMULATE_GATEWAY_CPUS", "4")
    settings = load_settings()
    assert settings.gateway_cpus == 4
    assert "EMULATE_GATEWAY_CPUS" not in settings.as_environment()  # the service never needs it
