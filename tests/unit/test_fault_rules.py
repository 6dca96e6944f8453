"""The launch rules of faults on request (core.policy): what a launch may ask for, by either channel, and the
words of each refusal. How each fault then looks is tests/integration/test_fault_modes.py's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.core import policy
from emulator.core.models import Fault, FaultKind
from emulator.errors import InvalidRequest
from emulator.host import doctor
from emulator.runtime.docker import OOM_CAP_STEP, OOM_ROOM_BYTES, oom_cap
from emulator.settings import Settings

FORMS = "one of pending, pull, oom:SECONDS or end:SECONDS[:EXIT_CODE]"


@pytest.mark.parametrize(
    "text, fault, kept",
    [
        ("pending", Fault(FaultKind.PENDING), "pending"),
        ("pull", Fault(FaultKind.PULL), "pull"),
        ("oom:0", Fault(FaultKind.OOM, 0), "oom:0"),
        ("oom:30", Fault(FaultKind.OOM, 30), "oom:30"),
        ("oom:030", Fault(FaultKind.OOM, 30), "oom:30"),
        ("end:5", Fault(FaultKind.END, 5), "end:5"),
        ("end:5:0", Fault(FaultKind.END, 5), "end:5"),
        ("end:5:3", Fault(FaultKind.END, 5, 3), "end:5:3"),
        ("end:1209600:255", Fault(FaultKind.END, 1209600, 255), "end:1209600:255"),
    ],
)
def test_each_form_is_read_and_written_back_as_the_store_keeps_it(text: str, fault: Fault, kept: str) -> None:
    assert policy.parse_fault(text) == fault
    assert str(fault) == kept and policy.parse_fault(kept) == fault


@pytest.mark.parametrize(
    "text, why",
    [
        ("Pending", FORMS),  # strict: the names as written
        ("pending:5", FORMS),
        ("oom", FORMS),
        ("oom:", FORMS),
        ("oom:-1", FORMS),
        ("oom:1.5", FORMS),
        ("oom:5:1", FORMS),  # an OOM kill's exit code is the kernel's
        ("oom:٣", FORMS),  # digits are ASCII digits
        ("end:5:", FORMS),
        ("end:5:1:2", FORMS),
        ("oom: 5", FORMS),
        ("oom:1209601", "SECONDS is at most 1209600, 14 days"),
        ("oom:" + "9" * 5000, "SECONDS is at most 1209600, 14 days"),  # no int() of thousands of digits
        ("end:5:256", "EXIT_CODE is 0 to 255"),
    ],
)
def test_what_is_no_fault_is_refused_in_skahas_words_for_a_bad_value(text: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        policy.parse_fault(text)
    assert refused.value.message == f"Invalid value for 'fault': {policy.shown(text)} ({why})"


def test_an_empty_value_is_named_as_one() -> None:
    with pytest.raises(InvalidRequest) as refused:
        policy.parse_fault("")
    assert refused.value.message == f"Invalid value for 'fault': '' ({FORMS})"


@given(st.text(max_size=30))
def test_any_text_is_a_fault_or_a_one_line_refusal(text: str) -> None:
    try:
        fault = policy.parse_fault(text)
    except InvalidRequest as refused:
        assert "\n" not in refused.message and refused.message.startswith("Invalid value for 'fault': ")
    else:
        assert policy.parse_fault(str(fault)) == fault


def test_a_fault_is_asked_for_by_the_parameter_or_by_an_env_entry_the_canfar_client_can_send() -> None:
    assert policy.check_fault(None, ["A=1", "REPLICA_ID=1"], None) is None
    assert policy.check_fault("", [], None) is None  # an empty parameter is none, as skaha's others
    assert policy.check_fault("pending", [], None) == Fault(FaultKind.PENDING)
    assert policy.check_fault(None, ["A=1", "EMULATE_FAULT=oom:3"], None) == Fault(FaultKind.OOM, 3)
    assert policy.check_fault("oom:3", ["EMULATE_FAULT=oom:3"], None) == Fault(FaultKind.OOM, 3)  # the same twice
    assert policy.check_fault(None, ["EMULATE_FAULTS=pending", "XEMULATE_FAULT=pull"], None) is None  # other keys


def test_an_env_entry_asks_in_its_own_name() -> None:
    with pytest.raises(InvalidRequest) as refused:
        policy.check_fault(None, ["EMULATE_FAULT=oom:x"], None)
    assert refused.value.message == f"Invalid value for env 'EMULATE_FAULT': oom:x ({FORMS})"
    with pytest.raises(InvalidRequest) as refused:
        policy.check_fault(None, ["EMULATE_FAULT"], None)  # skaha drops an entry with no '=': not this one
    assert refused.value.message == f"Invalid value for env 'EMULATE_FAULT': '' ({FORMS})"


def test_two_different_faults_are_refused_whichever_way_they_came() -> None:
    for parameter, env in (("pull", ["EMULATE_FAULT=pending"]), (None, ["EMULATE_FAULT=end:1", "EMULATE_FAULT=end:2"])):
        with pytest.raises(InvalidRequest, match=r"^two different faults asked for \(.+ and .+\): ask for one$"):
            policy.check_fault(parameter, env, None)


@pytest.mark.parametrize(
    "parameter, env, named",
    [("pending", [], "fault=pending"), (None, ["EMULATE_FAULT=oom:5"], "EMULATE_FAULT=oom:5"), ("bogus", [], None)],
)
def test_where_faults_are_off_any_ask_is_refused_with_how_to_turn_them_on(
    parameter: str | None, env: list[str], named: str | None
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        policy.check_fault(parameter, env, policy.FAULTS_OFF)
    asked = named or f"fault={parameter}"  # a bad value too: refused for being a fault at all, not for its form
    assert refused.value.message == (
        f"{asked} refused: this platform emulates no faults; start it with EMULATE_FAULTS=true "
        "(e.g. `EMULATE_FAULTS=true emulate up`) to ask for one"
    )


def test_faults_are_off_unless_the_setting_turns_them_on() -> None:
    assert Settings().faults is False
    assert Settings.model_validate({"faults": "true"}).faults is True
    assert Settings.model_validate({"faults": "true"}).as_environment()["EMULATE_FAULTS"] == "True"  # to the service


def test_the_doctor_warns_while_faults_are_on() -> None:
    assert doctor.faults_check(False) is None
    finding = doctor.faults_check(True)
    assert finding is not None and finding.status == doctor.WARN and "EMULATE_FAULTS" in finding.fix


@given(st.integers(0, 64 * 2**30), st.sampled_from([0, 2**30, 4 * 2**30, 20 * 2**30]))
def test_an_oom_faults_cap_is_small_and_makes_the_main_process_the_kernels_victim(used: int, limit: int) -> None:
    """The kernel weighs oom_score_adj in whole thousandths of the cap's pages: on a cap of a multiple of 1000
    pages (4, 16 or 64 KiB ones), the main process's 1000 outweighs the allocation, which holds at most the cap."""
    cap = oom_cap(used, limit)
    if limit and cap == limit:  # the session's own cap was smaller still: the allocation stays under it
        assert limit < used + OOM_ROOM_BYTES + OOM_CAP_STEP
        return
    assert used + OOM_ROOM_BYTES <= cap < used + OOM_ROOM_BYTES + OOM_CAP_STEP
    for page in (4096, 16384, 65536):
        assert cap % page == 0 and (cap // page) % 1000 == 0
