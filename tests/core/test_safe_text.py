"""Control characters from outside are shown, never obeyed by the terminal."""

from hypothesis import given, strategies as st

from console.core.safe_text import has_control, visible


def test_escape_sequences_become_pictures() -> None:
    shown = visible("key\x1b]0;owned\x07\x1b[2J")
    assert "\x1b" not in shown and "\x07" not in shown
    assert shown == "key␛]0;owned␇␛[2J"


def test_c1_controls_and_bidi_overrides_are_spelled_out() -> None:
    assert visible("a\x9bb") == "a\\x9bb"
    assert visible("abc\u202edef") == "abc\\u202edef"


def test_one_line_fields_stay_on_one_line_unless_asked() -> None:
    assert visible("a\nb\tc\rd") == "a␊b␉c␍d"
    assert visible("a\nb\tc\rd", keep_newlines=True) == "a\nb\tc␍d"


@given(st.text())
def test_nothing_a_terminal_acts_on_survives(text: str) -> None:
    shown = visible(text)
    assert not has_control(shown)
    assert all(ch >= " " and not "\x7f" <= ch <= "\x9f" for ch in shown)
