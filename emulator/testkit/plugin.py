"""The pytest plugin (entry point `pytest11: skaha`): CANFAR sessions of your image in your own tests.

    def test_imports(skaha_session):
        session = skaha_session("myorg/astro:dev", type="notebook", cores=2, ram=4)
        assert session.exec("python -c 'import astropy'").ok
        assert session.http.get("api").status_code == 200

    def test_my_folder(skaha_session):  # built from the folder (when it changed), kept across runs
        code, output = skaha_session(build="..", type="notebook", reuse=True).exec("id -u")

Standalone by default (no platform: a gateway of the run's own); `--skaha-url` launches through a running
platform instead. Loaded in every pytest run where skaha-emulator is installed, so this module imports
only pytest: the kit itself is imported when a test first asks for a session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from emulator.testkit.options import DEFAULT_LAUNCH, Launch

if TYPE_CHECKING:
    from emulator.testkit.images import BuildRecord, KitImages
    from emulator.testkit.session import SkahaSession

MARKER = "skaha"
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_KEPT = pytest.StashKey[list[dict[str, Any]]]()
_BUILDS = pytest.StashKey[list["BuildRecord"]]()
_REUSED = pytest.StashKey[dict[str, dict[str, Any]]]()


class Kit(Protocol):
    profiles: dict[str, Any]
    images: KitImages

    @property
    def base_url(self) -> str: ...

    def launch(
        self, image: str, session_type: str, options: Launch = DEFAULT_LAUNCH, reuse: bool = False
    ) -> SkahaSession: ...

    def close(self, keep: bool = False) -> None: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("skaha", "CANFAR session images (skaha-emulator's skaha_session fixture)")
    group.addoption(
        "--skaha-image",
        default=os.environ.get("SKAHA_IMAGE"),
        help="Image skaha_session launches when a test "
        "names none (default: $SKAHA_IMAGE, else the type's default image).",
    )
    group.addoption(
        "--skaha-url",
        default=os.environ.get("SKAHA_URL"),
        help="Launch through the skaha-emulator platform at this URL (attached mode; default: $SKAHA_URL). "
        "Without it, each run starts its own sessions and gateway (standalone mode).",
    )
    group.addoption(
        "--skaha-token",
        default=os.environ.get("SKAHA_TOKEN"),
        help="API token for --skaha-url (default: $SKAHA_TOKEN, else your own from the emulator's users file).",
    )
    group.addoption(
        "--skaha-keep",
        action="store_true",
        help="Leave a failed test's sessions running for a look (their URLs are printed at the end); "
        "`emulate testkit clean` removes them.",
    )
    group.addoption(
        "--skaha-check-logs",
        action="store_true",
        default=os.environ.get("SKAHA_CHECK_LOGS", "") not in ("", "0"),
        help="Fail a launch whose start-up logs carry a fatal line, as `emulate validate` does (tracebacks, FATAL, "
        "panic:, out of memory; default: $SKAHA_CHECK_LOGS). skaha_session(check_logs=...) decides per launch.",
    )
    group.addoption("--skaha-arc", default=None, help="Host folder mounted as /arc (default: a temporary one).")
    group.addoption("--skaha-profiles", default=None, help="Folder of session profiles (default: the emulator's).")
    group.addoption("--skaha-gateway-image", default=None, help="The gateway's image (default: the emulator's).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(image=None, type=None, build=None, reuse=False, check_logs=None, **launch): what "
        "skaha_session() launches when called without them (launch options such as cores, ram, timeout too).",
    )
    config.stash[_KEPT] = []
    config.stash[_BUILDS] = []
    config.stash[_REUSED] = {}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(node: pytest.Item) -> bool:
    return any(report.failed for report in node.stash.get(_REPORTS, {}).values())


@pytest.fixture(scope="session")
def skaha_kit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    """The run's sessions and gateway (standalone) or its link to a platform (attached); made on first use."""
    options = request.config.option
    kit: Kit
    if options.skaha_url:
        from emulator.testkit.attached import AttachedKit

        kit = AttachedKit(options.skaha_url, options.skaha_token).start()
    else:
        from emulator.testkit.standalone import StandaloneKit

        arc = Path(options.skaha_arc) if options.skaha_arc else tmp_path_factory.mktemp("arc")
        extra: dict[str, Any] = {}
        if options.skaha_profiles:  # else EMULATE_PROFILES_DIR, else the emulator's own
            extra["profiles_dir"] = Path(options.skaha_profiles)
        if options.skaha_gateway_image:
            extra["gateway_image"] = options.skaha_gateway_image
        kit = StandaloneKit(arc, open_arc=not options.skaha_arc, **extra).start()
    request.config.stash[_BUILDS] = kit.images.builds  # the summary's: what this run built from folders
    yield kit
    kit.close(keep=bool(request.config.stash[_KEPT]))


def _declared_types(image: str) -> list[str] | None:
    from emulator.labels import image_session_types
    from emulator.runtime.endpoint import client_from_environment

    try:
        return image_session_types(client_from_environment().images.get(image).labels or {})
    except Exception:  # not here yet (it will be pulled): nothing declared that we can see
        return None


def _option_image(image: str | None, session_type: str | None) -> str | None:
    """--skaha-image (SKAHA_IMAGE) stands in for an image a test does not name, unless its label says it
    is for other types (a desktop-app image's tests launch the platform's desktop with no image named)."""
    if not image or session_type is None:
        return image
    declared = _declared_types(image)
    return image if declared is None or session_type in declared else None


def _session_type(kit: Kit, image: str | None, given: str | None) -> str:
    if given:
        return given
    if image:
        declared = _declared_types(image)
        if declared and len(declared) == 1:
            return declared[0]
    raise pytest.UsageError(
        "skaha_session: say which session type to launch: skaha_session(image, type='notebook'), or "
        f"@pytest.mark.{MARKER}(type=...) (an image whose io.canfar.skaha.session.type label names one type "
        "needs neither)"
    )


FIXTURE_OPTIONS = ("image", "type", "build", "reuse", "check_logs")


def _image_to_launch(request: pytest.FixtureRequest, kit: Kit, given: dict[str, Any]) -> tuple[str, str]:
    """The image (built from `build`'s folder, relative to the test file's, when given) and the session type."""
    if given.get("image") and given.get("build"):
        raise pytest.UsageError("skaha_session: give image or build (a folder to build it from), not both")
    if given.get("build"):
        image: str | None = kit.images.build(Path(request.node.path).parent / given["build"])
    else:
        image = given.get("image") or _option_image(request.config.option.skaha_image, given.get("type"))
    session_type = _session_type(kit, image, given.get("type"))
    if not image:
        profile = kit.profiles.get(session_type)
        image = profile.default_image if profile else None
    if not image:
        raise pytest.UsageError(f"skaha_session: no image to launch as {session_type}")
    return image, session_type


def _launch_options(given: dict[str, Any]) -> Launch:
    options = {key: value for key, value in given.items() if key not in FIXTURE_OPTIONS}
    try:
        return Launch(**options)
    except TypeError:
        known = ", ".join([*FIXTURE_OPTIONS, *(f.name for f in fields(Launch))])
        raise pytest.UsageError(f"skaha_session takes {known} (got {', '.join(options)})") from None


@pytest.fixture
def skaha_session(request: pytest.FixtureRequest, skaha_kit: Kit) -> Iterator[Callable[..., SkahaSession]]:
    """Launch sessions under the CANFAR contract: `skaha_session(image, type=..., cores=, ram=, env=)`, or
    `skaha_session(build="folder/", ...)` to launch the folder's image (built when it changed); `reuse=True`
    keeps the session across tests and runs until its image or options change; `check_logs=True` fails a
    launch whose start-up logs carry a fatal line (`--skaha-check-logs` for every launch).

    Every other session is deleted after the test (kept with `--skaha-keep` when the test failed)."""
    marker = request.node.get_closest_marker(MARKER)
    defaults: dict[str, Any] = dict(marker.kwargs) if marker else {}
    launched: list[SkahaSession] = []

    def launch(image: str | None = None, type: str | None = None, **options: Any) -> SkahaSession:
        given = dict(defaults)
        if image or options.get("build"):  # what the call names beats the marker's image or folder
            given = {key: value for key, value in given.items() if key not in ("image", "build")}
        given |= {key: value for key, value in (("image", image), ("type", type)) if value} | options
        wanted = _launch_options(given)  # a misspelt option is told before anything is built
        chosen, session_type = _image_to_launch(request, skaha_kit, given)
        session = skaha_kit.launch(chosen, session_type, wanted, reuse=bool(given.get("reuse")))
        launched.append(session)
        check = given.get("check_logs")
        if (request.config.option.skaha_check_logs if check is None else check) and not session.adopted:
            try:
                session.check_logs()  # its start-up's: an adopted session's were checked when it was launched
            except Exception:
                session.discard()  # a reused one too: no later run may adopt a session that failed
                raise
        if session.reused:
            request.config.stash[_REUSED][session.id] = {"test": request.node.nodeid, **session.describe()}
        return session

    yield launch
    keep = request.config.option.skaha_keep and _failed(request.node)
    for session in reversed(launched):
        if keep and not session.closed and not session.reused:
            clean = "emulate testkit clean" if not request.config.option.skaha_url else f"emulate delete {session.id}"
            request.config.stash[_KEPT].append({"test": request.node.nodeid, "clean": clean, **session.describe()})
        else:
            session.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    builds = config.stash.get(_BUILDS, [])
    if builds:
        terminalreporter.section("skaha images built from folders")
        for record in builds:
            terminalreporter.line(record.describe())
    reused = config.stash.get(_REUSED, {})
    if reused:
        terminalreporter.section("skaha sessions kept for reuse")
        for entry in reused.values():
            how = "adopted" if entry["adopted"] else "launched"
            where = entry["connect"] or entry["url"] or "(no URL)"
            terminalreporter.line(f"{how} {entry['type']} {entry['id']} ({entry['image']}) at {where}")
        terminalreporter.line("remove with: emulate testkit clean")
    kept = config.stash.get(_KEPT, [])
    if not kept:
        return
    terminalreporter.section("skaha sessions kept for a look")
    for entry in kept:
        where = entry["connect"] or entry["url"] or "(no URL)"
        terminalreporter.line(f"{entry['test']}: {entry['type']} {entry['id']} ({entry['image']}) at {where}")
    for clean in dict.fromkeys(entry["clean"] for entry in kept):
        terminalreporter.line(f"remove with: {clean}")
