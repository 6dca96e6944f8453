import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.core import policy
from emulator.errors import InvalidRequest
from emulator.profiles import FixedResources

CONTEXT = policy.resource_context(host_cores=2, host_memory_gb=23.4, gpu_count=0)


def test_context_keeps_skahas_shape_but_only_what_this_host_can_give() -> None:
    assert CONTEXT["cores"] == {
        "default": 1,
        "defaultRequest": 1,
        "defaultLimit": 2,
        "defaultHeadless": 1,
        "options": [1, 2],
    }
    assert CONTEXT["memoryGB"]["options"] == [1, 2, 4, 6, 8, 10, 12, 14, 16, 20]
    assert CONTEXT["memoryGB"]["defaultRequest"] == 4
    assert CONTEXT["gpus"] == {"options": []}
    big = policy.resource_context(64, 512, 2)
    assert big["cores"]["options"] == list(range(1, 17)) and big["memoryGB"]["defaultLimit"] == 192
    assert big["gpus"]["options"] == [1, 2]


@given(st.from_regex(r"[A-Za-z0-9-]{1,63}", fullmatch=True))
def test_valid_names_are_lowercased(name: str) -> None:
    assert policy.validate_name(name) == name.lower()


@pytest.mark.parametrize(
    "name, message",
    [
        (None, "Missing parameter 'name'"),
        ("", "name must have a value"),
        ("my_session", "name can only contain alpha-numeric chars and '-'"),
        ("a b", "name can only contain alpha-numeric chars and '-'"),
        ("x" * 64, "name must be at most 63 characters (it becomes the hostname)"),
    ],
)
def test_bad_names_get_skahas_messages(name: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        policy.validate_name(name)
    assert caught.value.message == message


def test_types() -> None:
    assert policy.validate_type(None) == "headless"
    assert policy.validate_type("notebook") == "notebook"
    with pytest.raises(InvalidRequest, match="^Invalid session type: jupyter$"):
        policy.validate_type("jupyter")


def test_named_resources_are_fixed_and_omitted_ones_flexible() -> None:
    fixed = policy.resolve_resources(policy.ResourceRequest("2", "8"), CONTEXT, None, True, headless=False)
    assert (fixed.cores_request, fixed.cores_limit, fixed.ram_request_gb, fixed.ram_limit_gb) == (2, 2, 8, 8)
    assert fixed.fixed
    flexible = policy.resolve_resources(policy.ResourceRequest(), CONTEXT, None, True, headless=False)
    assert (flexible.cores_request, flexible.cores_limit) == (1, 2)
    assert (flexible.ram_request_gb, flexible.ram_limit_gb) == (4, 20)
    assert not flexible.fixed
    ram_only = policy.resolve_resources(policy.ResourceRequest(ram="8"), CONTEXT, None, True, headless=False)
    assert ram_only.fixed and (ram_only.cores_request, ram_only.cores_limit) == (1, 2)


def test_fixed_profile_resources_ignore_the_request() -> None:
    profile_fixed = FixedResources(cores_request=0.25, cores_limit=1, ram_request_gb=1, ram_limit_gb=4)
    got = policy.resolve_resources(policy.ResourceRequest("2", "8"), CONTEXT, profile_fixed, False, False)
    assert (got.cores_request, got.cores_limit, got.ram_limit_gb, got.fixed) == (0.25, 1, 4, True)


@pytest.mark.parametrize(
    "request_, message",
    [
        (policy.ResourceRequest(cores="3"), "Invalid value for 'cores': 3"),
        (policy.ResourceRequest(cores="two"), "Invalid value for 'cores': two"),
        (policy.ResourceRequest(ram="3"), "Invalid value for 'ram': 3"),
        (policy.ResourceRequest(ram="64"), "Invalid value for 'ram': 64"),
        (policy.ResourceRequest(gpus="1"), "Invalid value for 'gpus': 1"),
    ],
)
def test_options_outside_the_context_are_refused(request_: policy.ResourceRequest, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        policy.resolve_resources(request_, CONTEXT, None, True, headless=False)
    assert caught.value.message == message


def test_env_entries_follow_skahas_split_rule() -> None:
    assert policy.parse_env(["A=1", "B=x=y", "C", "D="]) == ["A=1", "D="]


def test_expiry_and_threads() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.expiry(start, 345600) == datetime(2026, 1, 5, tzinfo=UTC)
    assert policy.threads(0.25) == 1 and policy.threads(4) == 4


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="name can only contain alpha-numeric chars and '-'"):
        policy.validate_name("good\n")


@pytest.mark.parametrize(
    "reference",
    [
        "skaha-emulator/notebook:latest",
        "images.canfar.net/skaha/carta:5.1.0",
        "localhost:5000/astro/ml:dev",
        "ubuntu",
        "registry.example:443/a/b/c@sha256:" + "a" * 64,
    ],
)
def test_real_image_references_pass(reference: str) -> None:
    assert policy.validate_image(reference) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "../../distribution/127.0.0.1:5000/x:y",
        "../../containers/emulate-service",
        "../../images",
        "notebook:latest\n",
        "a b",
        "UPPER:1",
        "x:" + "t" * 200,
        "a" * 600,
        "x@sha256:short",
        "%2e%2e/containers",
        "x@md5:" + "0" * 32,  # the digest's own errors (unsupported, wrong length, case) escaped as a 500
        "x@sha256:" + "a" * 63,
        "x@sha256:" + "A" * 64,
        "x:1@sha512:" + "a" * 127,
    ],
)
def test_what_is_not_an_image_reference_never_reaches_the_engine(reference: str) -> None:
    with pytest.raises(InvalidRequest, match="is not a valid image reference"):
        policy.validate_image(reference)


@given(st.text(max_size=300))
def test_every_accepted_reference_is_plain_grammar(reference: str) -> None:
    try:
        accepted = policy.validate_image(reference)
    except InvalidRequest as exc:
        assert exc.message.isprintable() and len(exc.message) < 400  # a message fit to show
        return
    assert accepted == reference and re.fullmatch(r"[a-z0-9][a-zA-Z0-9._:/@\-\[\]]*", reference)
    assert ".." not in reference.split("/") and "//" not in reference


@given(st.from_regex(r"[a-z]{1,8}(:[a-z0-9]{1,4})?@[a-zA-Z0-9+._-]{1,8}:[0-9a-fA-F]{0,130}", fullmatch=True))
def test_every_digest_is_accepted_or_refused_in_words(reference: str) -> None:
    try:
        assert policy.validate_image(reference) == reference
    except InvalidRequest as exc:
        assert "is not a valid image reference" in exc.message


@pytest.mark.parametrize("name", ["emulate", "emulate-notebook-abcd1234", "Emulate-x-service", "emulate-ws-gateway"])
def test_names_that_spell_a_platform_containers_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match="must not start with 'emulate-'"):
        policy.validate_name(name)


def test_names_that_merely_contain_the_prefix_pass() -> None:
    assert policy.validate_name("my-emulate-test") == "my-emulate-test"
    assert policy.validate_name("emulator") == "emulator"


@given(st.text(max_size=80))
def test_accepted_names_are_hostnames(name: str) -> None:
    try:
        accepted = policy.validate_name(name)
    except InvalidRequest:
        return
    assert re.fullmatch(r"[a-z0-9-]{1,63}", accepted)


@given(st.lists(st.text(max_size=30), max_size=20))
def test_env_keeps_only_single_key_value_pairs(entries: list[str]) -> None:
    kept = policy.parse_env(entries)
    assert all(entry.count("=") == 1 for entry in kept) and set(kept) <= set(entries)
