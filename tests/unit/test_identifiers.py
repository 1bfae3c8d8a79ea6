"""containerd's identifier rules, enforced before any request is sent."""

import pytest

from libcontainerd._identifiers import MAX_IDENTIFIER_LENGTH, check_identifier
from libcontainerd.errors import InvalidArgument


@pytest.mark.parametrize("value", ["a", "web-1", "a.b_c-d", "A9", "x" * MAX_IDENTIFIER_LENGTH])
def test_valid_identifiers_are_accepted(value: str) -> None:
    assert check_identifier(value) == value


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("", "must not be empty"),
        ("../x", "not a valid identifier"),
        ("a/b", "not a valid identifier"),
        ("-a", "not a valid identifier"),
        ("a-", "not a valid identifier"),
        ("a..b", "not a valid identifier"),
        ("a b", "not a valid identifier"),
        ("café", "not a valid identifier"),
        ("a\n", "not a valid identifier"),
        ("x" * (MAX_IDENTIFIER_LENGTH + 1), "at most 76"),
    ],
)
def test_invalid_identifiers_are_refused_with_the_reason(value: str, complaint: str) -> None:
    with pytest.raises(InvalidArgument, match=complaint):
        check_identifier(value)


def test_a_non_string_identifier_names_its_type() -> None:
    with pytest.raises(InvalidArgument, match="must be a string, not int"):
        check_identifier(12)


def test_the_message_names_what_the_identifier_is_for() -> None:
    with pytest.raises(InvalidArgument, match=r"^process id"):
        check_identifier("a/b", "process id")
