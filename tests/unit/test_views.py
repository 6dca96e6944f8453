from datetime import UTC, datetime, timedelta

from emulator.api import views
from emulator.core.models import Event, Group, HostCapacity, PlatformStats, Resources, Session, Status, User
from emulator.runtime.base import Usage
from tests.factories import make_session

USER = User("jdoe", 20001, 20001, (Group("jdoe", 20001), Group("astro", 30001)))
START = datetime(2025, 7, 20, 17, 3, 11, tzinfo=UTC)


def _session(fixed: bool) -> Session:
    resources = Resources(1, 1, 4, 4, fixed=True) if fixed else Resources(1, 16, 4, 192)
    return make_session(
        user="jdoe",
        name="my-analysis",
        image="img",
        status=Status.RUNNING,
        resources=resources,
        start_time=START,
        expiry_time=datetime(2025, 7, 24, 17, 3, 11, tzinfo=UTC),
    )


def test_v0_session_json_has_skahas_fields_in_order() -> None:
    doc = views.session_json(_session(False), USER, "http://h/x", Usage(312 * 1024**2, 0.0031), "v0")
    assert list(doc) == [
        "id",
        "userid",
        "runAsUID",
        "runAsGID",
        "supplementalGroups",
        "appid",
        "image",
        "type",
        "status",
        "name",
        "startTime",
        "expiryTime",
        "connectURL",
        "requestedRAM",
        "requestedCPUCores",
        "requestedGPUCores",
        "ramInUse",
        "gpuRAMInUse",
        "cpuCoresInUse",
        "gpuUtilization",
    ]
    assert doc["runAsUID"] == "20001" and doc["supplementalGroups"] == [20001, 30001]
    assert doc["appid"] == "<none>" and doc["requestedGPUCores"] == "<none>"
    assert doc["startTime"] == "2025-07-20T17:03:11Z" and doc["expiryTime"] == "2025-07-24T17:03:11Z"
    assert doc["requestedRAM"] == "4G" and doc["requestedCPUCores"] == "1"
    assert doc["ramInUse"] == "312M" and doc["cpuCoresInUse"] == "0.003"


def test_v1_adds_is_fixed_and_omits_flexible_requests() -> None:
    flexible = views.session_json(_session(False), USER, "u", None, "v1")
    assert flexible["isFixedResources"] is False and "requestedRAM" not in flexible
    assert flexible["requestedGPUCores"] == "0" and flexible["ramInUse"] == "<none>"
    fixed = views.session_json(_session(True), USER, "u", None, "v1")
    assert fixed["isFixedResources"] is True and fixed["requestedRAM"] == "4G"


def test_succeeded_is_completed_in_v1() -> None:
    assert views.status_word(Status.SUCCEEDED, "v0") == "Succeeded"
    assert views.status_word(Status.SUCCEEDED, "v1") == "Completed"


def test_events_table() -> None:
    assert views.events_table([]) == "<none>\n"
    event = Event("k", "Normal", "Scheduled", "Assigned", START, START)
    lines = views.events_table([event]).splitlines()
    assert lines[0].split() == ["TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME"]
    assert lines[1].split() == ["Normal", "Scheduled", "Assigned", "2025-07-20T17:03:11Z", "2025-07-20T17:03:11Z"]


def test_stats_carry_gpus_as_the_canfar_client_reads_them_and_the_machines_own_figures() -> None:
    capacity = HostCapacity(cores=16, memory_gb=125.7)
    plain = views.stats_json(PlatformStats(1, 0, 0, 2.0, 8.0, capacity))
    assert "gpu" not in plain and "host" not in plain  # nothing to say: skaha's document alone
    assert plain["cores"]["requestedCPUCores"] == 2.0 and plain["ram"]["requestedRAM"] == "8G"
    full = views.stats_json(PlatformStats(1, 0, 0, 2.0, 8.0, capacity, requested_gpus=1, gpus=2), (3.456, 9.96))
    assert full["gpu"] == {"requestedGPU": 1, "gpuAvailable": 2}
    assert full["host"] == {"cpuCoresInUse": 3.46, "ramInUse": "10.0G"}


def test_times_in_words_are_said_one_way_on_every_page() -> None:
    now = datetime(2025, 7, 24, 12, 0, 0, tzinfo=UTC)
    assert views.when(START) == "2025-07-20 17:03:11 UTC"
    assert views.ago(None, now) == "none yet"
    assert views.ago(now - timedelta(seconds=59), now) == "just now"
    assert views.ago(now - timedelta(minutes=3), now) == "3 min ago"
    assert views.ago(now - timedelta(hours=2, minutes=5), now) == "2 h 5 min ago"
    assert views.ago(now - timedelta(days=3, hours=4, minutes=9), now) == "3 d 4 h ago"
    assert views.duration(59 * 60) == "0 h 59 min" and views.duration(-5) == "0 h 0 min"
