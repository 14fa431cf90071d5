"""Japan Standard Time and the business-day calendar (weekends and public holidays excluded)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import jpholiday

JST = timezone(timedelta(hours=9), "JST")


def jst_iso(moment: datetime) -> str:
    """ISO 8601 in JST with its +09:00 offset, as the system log requires (R22)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware time")
    return moment.astimezone(JST).isoformat(timespec="microseconds")


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and not jpholiday.is_holiday(day)


def add_business_days(start: date, count: int) -> date:
    """The `count`-th business day after `start` (start itself not counted); start if count=0."""
    day = start
    while count > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            count -= 1
    return day


def access_ends(contract_end: date, cleanup_business_days: int) -> datetime:
    """The instant access ends: midnight JST after the last day of the data-cleanup period,
    which runs `cleanup_business_days` business days after the contract's last day (R7)."""
    last_day = add_business_days(contract_end, cleanup_business_days)
    return datetime.combine(last_day + timedelta(days=1), time(0), JST).astimezone(UTC)
