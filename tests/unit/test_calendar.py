"""R22 timestamps in JST; R7 business days (weekends and Japanese public holidays excluded)."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from adapters.holidays import JpHolidays
from authsvc.domain.calendar import JST, access_ends, add_business_days, is_business_day, jst_iso

HOLIDAY = JpHolidays().is_holiday  # Japan's public holidays, as the service is built with


def test_jst_iso_has_the_plus_nine_offset():
    text = jst_iso(datetime(2026, 4, 1, 0, 0, tzinfo=UTC))
    assert text == "2026-04-01T09:00:00.000000+09:00"
    assert datetime.fromisoformat(text) == datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def test_jst_iso_converts_from_any_zone_across_the_date_line():
    new_york = timezone(timedelta(hours=-5))
    assert jst_iso(datetime(2026, 12, 31, 12, 30, 5, 123, tzinfo=new_york)) == (
        "2027-01-01T02:30:05.000123+09:00"
    )


def test_jst_iso_rejects_a_naive_datetime():
    with pytest.raises(ValueError, match="naive"):
        jst_iso(datetime(2026, 4, 1, 9, 0))


def test_the_2026_holidays_used_below_are_real():
    for day in ("2026-01-01", "2026-01-12", "2026-04-29", "2026-05-04", "2026-05-05",
                "2026-05-06", "2026-09-21", "2026-09-22", "2026-09-23"):
        assert HOLIDAY(date.fromisoformat(day)), day
    assert HOLIDAY(date(2026, 5, 3))  # a Sunday, hence the substitute on 05-06
    assert not HOLIDAY(date(2026, 5, 1))


@pytest.mark.parametrize(
    ("day", "business"),
    [
        ("2026-04-24", True),  # Friday
        ("2026-04-25", False),  # Saturday
        ("2026-04-26", False),  # Sunday
        ("2026-04-29", False),  # Wednesday, Shōwa Day
        ("2026-05-06", False),  # Wednesday, substitute holiday
        ("2026-05-07", True),
    ],
)
def test_is_business_day(day, business):
    assert is_business_day(date.fromisoformat(day), HOLIDAY) is business


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        ("2026-04-24", 1, "2026-04-27"),  # Friday -> Monday over the weekend
        ("2026-04-27", 2, "2026-04-30"),  # Mon -> Thu, skipping Wed 04-29 (Shōwa Day)
        ("2026-04-30", 1, "2026-05-01"),
        ("2026-04-30", 2, "2026-05-07"),  # Golden Week: 05-02..05-06 all closed
        ("2025-12-31", 1, "2026-01-02"),  # New Year's Day skipped
        ("2026-01-09", 1, "2026-01-13"),  # Coming-of-Age Day, Monday 01-12
        ("2026-09-18", 1, "2026-09-24"),  # Silver Week: 09-21..09-23
        ("2026-04-25", 1, "2026-04-27"),  # from a Saturday
        ("2026-04-01", 10, "2026-04-15"),  # two plain weeks
    ],
)
def test_add_business_days(start, count, expected):
    assert add_business_days(date.fromisoformat(start), count, HOLIDAY) == date.fromisoformat(expected)


def test_count_zero_is_the_start_itself_even_on_a_holiday():
    assert add_business_days(date(2026, 4, 24), 0, HOLIDAY) == date(2026, 4, 24)
    assert add_business_days(date(2026, 5, 5), 0, HOLIDAY) == date(2026, 5, 5)


def test_add_business_days_agrees_with_a_day_by_day_count_over_2026():
    start = date(2026, 1, 1)
    for count in (1, 14, 60, 200):
        end = add_business_days(start, count, HOLIDAY)
        counted = sum(
            1 for i in range(1, (end - start).days + 1)
            if (d := start + timedelta(days=i)).weekday() < 5 and not HOLIDAY(d)
        )
        assert counted == count
        assert end.weekday() < 5 and not HOLIDAY(end)


def test_access_ends_after_fourteen_business_days_for_a_contract_ending_before_golden_week():
    # Contract's last day: Friday 2026-05-01. Cleanup days: 05-07 (1) .. 05-26 (14).
    ends = access_ends(date(2026, 5, 1), 14, HOLIDAY)
    assert ends == datetime(2026, 5, 27, 0, 0, tzinfo=JST)
    assert ends.tzinfo is not None and ends.utcoffset() == timedelta(0)  # stored in UTC
    assert ends == datetime(2026, 5, 26, 15, 0, tzinfo=UTC)
    assert jst_iso(ends) == "2026-05-27T00:00:00.000000+09:00"


def test_access_ends_without_holidays_is_shorter():
    # Same 14 days from a Friday without holidays ahead: 04-03 -> 04-23, access ends 04-24 00:00.
    assert access_ends(date(2026, 4, 3), 14, HOLIDAY) == datetime(2026, 4, 24, 0, 0, tzinfo=JST)


def test_access_ends_with_no_cleanup_period_is_midnight_after_the_contract():
    assert access_ends(date(2026, 5, 1), 0, HOLIDAY) == datetime(2026, 5, 2, 0, 0, tzinfo=JST)


def test_the_holidays_are_the_callers_data_not_the_rules():
    """The rule only skips weekends and whatever the given source calls a holiday."""
    assert is_business_day(date(2026, 4, 29), lambda _day: False)  # Shōwa Day, if not a holiday
    assert not is_business_day(date(2026, 4, 28), lambda day: day == date(2026, 4, 28))
    assert not is_business_day(date(2026, 4, 25), lambda _day: False)  # a Saturday stays one
    none = lambda _day: False  # noqa: E731
    assert add_business_days(date(2026, 4, 30), 2, none) == date(2026, 5, 4)
    assert access_ends(date(2026, 5, 1), 14, none) == datetime(2026, 5, 22, 0, 0, tzinfo=JST)
