import re

from hypothesis import given
from hypothesis import strategies as st

from emulator import naming

ID = re.compile(r"^[a-z][a-z0-9]{7}$")
TYPES = st.sampled_from(["notebook", "desktop", "carta", "contributed", "firefly", "headless", "desktop-app"])
PREFIXES = st.from_regex(r"emulate(-[a-z0-9][a-z0-9-]{0,20})?", fullmatch=True)


def test_session_ids_have_skahas_shape() -> None:
    ids = {naming.new_session_id() for _ in range(2000)}
    assert all(ID.match(i) for i in ids)
    assert len(ids) == 2000


@given(prefix=PREFIXES, kind=TYPES, first=st.from_regex(ID, fullmatch=True), second=st.from_regex(ID, fullmatch=True))
def test_session_container_names_never_collide_within_an_instance(
    prefix: str, kind: str, first: str, second: str
) -> None:
    names = {
        naming.session_container(prefix, kind, first),
        naming.service_container(prefix),
        naming.gateway_container(prefix),
    }
    if first != second:
        assert naming.session_container(prefix, kind, second) not in names
    assert len(names) == 3
