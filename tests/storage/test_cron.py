"""storage.cron: the one cron check the CLI and the API share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.cron import InvalidSchedule, check_cron, check_timezone

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 3 * * 0", "0 3 * * 0"),
        ("  */15   * * * MON-FRI ", "*/15 * * * MON-FRI"),
        ("0 0 1 1 *", "0 0 1 1 *"),
        ("0 0 29 2 1", "0 0 29 2 1"),  # day-of-month OR day-of-week: Mondays in February fire
    ],
)
def test_good_cron_is_normalized(cron: str, expected: str) -> None:
    assert check_cron(cron, "UTC", NOW) == expected


@pytest.mark.parametrize(
    ("cron", "expected_message"),
    [
        ("0 3 31 2 *", "never fires"),  # February 31st never comes
        ("0 0 29 2 *", "does not fire within a year"),  # the next February 29th is in 2028
        ("* * * * * *", "has 6 fields: give 5"),  # a seconds field: every second
        ("@daily", "has 1 field: give 5"),
        ("61 * * * *", "out of range"),
        ("a b c d e", "invalid cron 'a b c d e': not acceptable"),
        ("H 3 * * *", "random and hashed fields"),
        ("", "has 0 fields"),
    ],
)
def test_bad_cron_is_one_line(cron: str, expected_message: str) -> None:
    with pytest.raises(InvalidSchedule, match=expected_message) as raised:
        check_cron(cron, "UTC", NOW)
    assert "\n" not in str(raised.value)


def test_unknown_timezone() -> None:
    with pytest.raises(InvalidSchedule, match="unknown timezone 'Mars/Base'"):
        check_timezone("Mars/Base")
    with pytest.raises(InvalidSchedule, match="unknown timezone"):
        check_cron("0 3 * * 0", "../etc/passwd", NOW)
