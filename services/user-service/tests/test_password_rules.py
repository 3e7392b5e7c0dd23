"""A new password that is guessed first is refused (review L7): user_service.password_rules, then the API's 422."""

import pytest

from user_service.password_rules import weakness
from user_service.schemas import UserRegistration, UserUpdate

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("password", None),
        ("Password123", None),
        ("aaaaaaaaaa", None),
        ("12345678", None),
        ("3456789012", None),
        ("abcdefghij", None),
        ("87654321", None),
        ("ada.lovelace-2026", "Ada.Lovelace@example.com"),
        ("my ada@example.com!", "ada@example.com"),
    ],
)
def test_guessable_passwords_are_refused_with_the_reason(password: str, email: str | None) -> None:
    assert weakness(password, email) is not None


@pytest.mark.parametrize("password", ["correct-horse", "a-new-password", "secret-5f3a9c", "ab" * 4, "zz-top-42"])
def test_others_pass(password: str) -> None:
    assert weakness(password, "ada@example.com") is None


def test_the_api_bodies_name_the_field() -> None:
    with pytest.raises(ValueError, match="pwd") as signed_up:
        UserRegistration(email="ada@example.com", name="Ada", pwd="qwerty123")
    assert "too easy to guess" in str(signed_up.value)
    with pytest.raises(ValueError, match="pwd"):
        UserUpdate(pwd="11111111", currentPwd="whatever-it-was")
    assert UserUpdate(name="Ada B").pwd is None
