from pathlib import Path

from emulator.core.callback import KEY_BYTES, CallbackTokens


def test_tokens_name_their_session_and_cannot_be_forged(tmp_path: Path) -> None:
    tokens = CallbackTokens(tmp_path / "callback.key")
    token = tokens.token("abcdefgh")
    assert token.startswith("abcdefgh.") and tokens.session_of(token) == "abcdefgh"
    assert tokens.session_of("abcdefgh." + "0" * 40) is None
    assert tokens.session_of(token.replace("abcdefgh", "zzzzzzzz", 1)) is None
    assert CallbackTokens(tmp_path / "callback.key").token("abcdefgh") == token  # the key persists
    assert (tmp_path / "callback.key").stat().st_mode & 0o777 == 0o600


def test_a_short_key_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    key = tmp_path / "callback.key"
    key.write_bytes(b"")
    tokens = CallbackTokens(key)
    assert len(key.read_bytes()) == KEY_BYTES
    assert tokens.session_of(tokens.token("abcdefgh")) == "abcdefgh"
