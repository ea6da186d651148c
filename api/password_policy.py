"""What a password must be, NIST SP 800-63B style: long enough, not common, not guessable.

No composition rules (no "one digit, one symbol"): length is counted in characters (code
points, so `ééééééé` is 7 whatever its bytes), any printable character counts, and up to 256
are taken. Refused: shorter than 8; only whitespace; control characters (NUL, tab,
newline... which no keyboard user types on purpose and which systems truncate or mangle);
and whatever zxcvbn rates below MIN_SCORE: its offline lists of common passwords, names
and words, keyboard walks, repeats, sequences, dates, and the account's own username and
email. Score 2 is "somewhat guessable", about 10^8 guesses: enough against online guessing,
which the login limits throttle; the hash (Argon2id) is what stands against offline guessing.
"""

from __future__ import annotations

import unicodedata

from zxcvbn import zxcvbn

MIN_LENGTH = 8
MAX_LENGTH = 256
MIN_SCORE = 2
# zxcvbn refuses longer input (its matching grows fast with length); the first 72 characters
# of a password that is not weak already make it strong enough.
CHECKED_LENGTH = 72


def password_problem(password: str, username: str = "", email: str = "") -> str | None:
    """Why `password` cannot be used, in one line for the user; None if it can."""
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"the password must be at most {MAX_LENGTH} characters long"
    if not password.strip():
        return "the password must not be only spaces"
    if any(unicodedata.category(c) == "Cc" for c in password):
        return "the password must not contain control characters (NUL, tab, newline...)"
    context = [v for v in (username, email, email.partition("@")[0]) if v]
    rating = zxcvbn(password[:CHECKED_LENGTH], user_inputs=context)
    if rating["score"] < MIN_SCORE:
        why = rating["feedback"]["warning"] or "it is too easy to guess"
        return f"the password is too easy to guess: {why.rstrip('.')}; a few unrelated words work"
    return None
