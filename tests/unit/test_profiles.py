from pathlib import Path

import pytest

from emulator.errors import ConfigError
from emulator.profiles import load_profiles
from emulator.settings import REPO_ROOT


def test_shipped_profiles_load() -> None:
    profiles = load_profiles(REPO_ROOT / "profiles")
    notebook = profiles["notebook"]
    assert notebook.port == 8888 and not notebook.strip_prefix
    assert notebook.command == ["/skaha-system/start-jupyterlab.sh", "{session_id}"]


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


GOOD = """
type: notebook
description: d
default_image: x
port: 8888
path_prefix: "/session/notebook/{session_id}/"
connect_url: "{base_url}/session/notebook/{session_id}/"
"""


def test_every_problem_is_reported_with_its_file_and_field(tmp_path: Path) -> None:
    _write(tmp_path, "notebook.yaml", GOOD.replace("{base_url}/", "{base}/"))
    _write(tmp_path, "desktop.yaml", GOOD.replace("type: notebook", "type: desktop").replace("port: 8888", "port: x"))
    _write(tmp_path, "carta.yaml", GOOD.replace("type: notebook", "type: carta") + "colour: blue\n")
    with pytest.raises(ConfigError) as caught:
        load_profiles(tmp_path)
    message = caught.value.message
    assert f"{tmp_path / 'notebook.yaml'} is invalid: connect_url: unknown placeholder {{base}}" in message
    assert f"{tmp_path / 'desktop.yaml'} is invalid: port:" in message
    assert f"{tmp_path / 'carta.yaml'} is invalid: colour: Extra inputs are not permitted" in message


def test_type_must_match_the_file_name(tmp_path: Path) -> None:
    _write(tmp_path, "desktop.yaml", GOOD)
    with pytest.raises(ConfigError, match="type 'notebook' must match the file name"):
        load_profiles(tmp_path)


def test_the_legacy_carta_alternative_loads_with_its_split_routes() -> None:
    from emulator.profiles import load_profile

    legacy = load_profile(REPO_ROOT / "profiles" / "alternatives" / "carta.yaml")
    assert (legacy.path_prefix, legacy.port, legacy.strip_prefix) == ("/session/carta/http/{session_id}/", 6901, True)
    assert [(r.path_prefix, r.port, r.strip_prefix) for r in legacy.extra_routes] == [
        ("/session/carta/ws/{session_id}/", 5901, True)
    ]


def test_mounted_folders_must_be_plain_folders_beside_the_profiles(tmp_path: Path) -> None:
    _write(tmp_path, "notebook.yaml", GOOD + "mounts:\n  /desktopstartup: ../etc\n  relative: x\n")
    with pytest.raises(ConfigError) as caught:
        load_profiles(tmp_path)
    assert "mounts./desktopstartup: '../etc' must name a folder beside the profiles" in caught.value.message
    assert "mounts.relative: must be an absolute path" in caught.value.message
    (tmp_path / "notebook.yaml").write_text(GOOD + "mounts:\n  /templates: absent\n")
    with pytest.raises(ConfigError, match="mounts: no folder absent beside it"):
        load_profiles(tmp_path)


def test_a_profile_written_before_the_type_flags_keeps_its_meaning(tmp_path: Path) -> None:
    _write(tmp_path, "headless.yaml", "type: headless\ndescription: d\ndefault_image: x\nconnect_url: not-applicable\n")
    _write(tmp_path, "desktop-app.yaml", "type: desktop-app\ndescription: d\ndefault_image: x\nconnect_url: x\n")
    profiles = load_profiles(tmp_path)
    headless, app = profiles["headless"], profiles["desktop-app"]
    assert headless.batch and not headless.counts_toward_limit and not headless.interactive
    assert app.attaches_to == "desktop" and app.hostname == "{app_name}" and not app.counts_toward_limit


def test_a_kept_prefix_needs_a_probe_under_it(tmp_path: Path) -> None:
    _write(tmp_path, "notebook.yaml", GOOD + 'readiness: {kind: http, path: "/api"}\n')
    with pytest.raises(ConfigError, match="readiness.path: must lie under path_prefix"):
        load_profiles(tmp_path)
