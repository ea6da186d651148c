"""Cron expressions a schedule may use: one check for the CLI and the API.

Five fields (minute hour day-of-month month day-of-week), read by croniter as Prefect's
CronSchedule reads them (Prefect vendors its own copy); an expression must fire within a
year, so that `0 3 31 2 *` (February 31st) is refused when it is typed, not stored to fail
every later schedule. A sixth field (croniter's seconds: firing every second) and croniter's
random and hashed fields (`R`, `H`, which Prefect refuses) are refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from storage.errors import UserError

FIELDS = 5
HORIZON = timedelta(days=366)


class InvalidSchedule(UserError):
    pass


def check_timezone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"unknown timezone {timezone!r} (e.g. UTC, Europe/Paris)") from None


def check_cron(expression: str, timezone: str = "UTC", now: datetime | None = None) -> str:
    """The expression, normalized to single spaces, or InvalidSchedule with one line."""
    fields = expression.split()
    if len(fields) != FIELDS:
        raise InvalidSchedule(
            f"cron {expression!r} has {len(fields)} field{'s' if len(fields) != 1 else ''}: give 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * 0'"
        )
    normalized = " ".join(fields)
    if any(field[0] in "RrHh" for field in fields):  # no day or month name starts so
        raise InvalidSchedule(
            f"cron {expression!r}: random and hashed fields (R, H) are not supported"
        )
    zone = check_timezone(timezone)
    start = (now or datetime.now(zone)).astimezone(zone).replace(tzinfo=None)
    try:
        first = croniter(normalized, start).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidSchedule(f"cron {expression!r} never fires (no such date)") from None
    except (CroniterError, ValueError) as exc:
        detail = str(exc).replace(f"[{normalized}] is ", "").rstrip(".")
        raise InvalidSchedule(f"invalid cron {expression!r}: {detail}") from None
    if first - start > HORIZON:
        raise InvalidSchedule(f"cron {expression!r} does not fire within a year")
    return normalized
