"""What a new password may not be (review L7): besides 8..128 characters, not one of the passwords people pick
first, not one character repeated, not a plain run (12345678, abcdefgh), and not the e-mail or its name part.
A guess at these costs an attacker one try; the login throttle allows five per account.

The list is short on purpose: the dozens of passwords that lead every published list of leaked ones, written out
here. A check against a large breach corpus would need that corpus; this refuses the ones guessed first."""

import string

COMMON = frozenset(
    {
        "password",
        "password1",
        "password12",
        "password123",
        "passw0rd",
        "p@ssw0rd",
        "qwertyui",
        "qwerty123",
        "qwertyuiop",
        "asdfghjk",
        "asdfghjkl",
        "zxcvbnm1",
        "1q2w3e4r",
        "1q2w3e4r5t",
        "iloveyou",
        "iloveyou1",
        "letmein1",
        "letmein123",
        "welcome1",
        "welcome123",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "superman",
        "starwars",
        "trustno1",
        "whatever",
        "admin123",
        "administrator",
        "changeme",
        "change-me",
        "monkey123",
        "dragon123",
        "master123",
        "secret123",
    }
)
_RUNS = (string.digits + string.digits, string.ascii_lowercase, string.ascii_lowercase[::-1], string.digits[::-1] * 2)


def weakness(password: str, email: str | None = None) -> str | None:
    """Why `password` is refused, or None. Compared without case."""
    folded = password.casefold()
    if folded in COMMON:
        return "one of the most common passwords"
    if len(set(folded)) == 1:
        return "one character repeated"
    if any(folded in run for run in _RUNS):
        return "a plain run of letters or digits"
    if email:
        address = email.casefold()
        name = address.split("@", 1)[0]
        if address in folded or (len(name) >= 3 and name in folded):
            return "it contains the e-mail address or its name part"
    return None
