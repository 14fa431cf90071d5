"""Japan Standard Time and the business-day calendar (weekends and public holidays excluded).

Which days are public holidays is data, not a rule: it is passed in as `is_holiday` (the
`Holidays` port, authsvc/ports.py; Japan's calendar in adapters/holidays.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone

JST = timezone(timedelta(hours=9), "JST")

IsHoliday = Callable[[date], bool]  # whether a day is a public holiday


def jst_iso(moment: datetime) -> str:
    """ISO 8601 in JST with its +09:00 offset, as the system log requires (R22)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware time")
    return moment.astimezone(JST).isoformat(timespec="microseconds")


def is_business_day(day: date, is_holiday: IsHoliday) -> bool:
    return day.weekday() < 5 and not is_holiday(day)


def add_business_days(start: date, count: int, is_holiday: IsHoliday) -> date:
    """The `count`-th business day after `start` (start itself not counted); start if count=0."""
    day = start
    while count > 0:
        day += timedelta(days=1)
        if is_business_day(day, is_holiday):
            count -= 1
    return day


def access_ends(contract_end: date, cleanup_business_days: int, is_holiday: IsHoliday) -> datetime:
    """The instant access ends: midnight JST after the last day of the data-cleanup period,
    which runs `cleanup_business_days` business days after the contract's last day (R7)."""
    last_day = add_business_days(contract_end, cleanup_business_days, is_holiday)
    return datetime.combine(last_day + timedelta(days=1), time(0), JST).astimezone(UTC)
