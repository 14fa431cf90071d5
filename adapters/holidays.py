"""Japan's public holidays (jpholiday: the Cabinet Office's list, substitute and citizens'
holidays included, offline), behind the `Holidays` port (authsvc/ports.py) that the
business-day calendar (authsvc/domain/calendar.py) takes as its data source."""

from __future__ import annotations

from datetime import date

import jpholiday


class JpHolidays:
    """Public holidays of Japan."""

    def is_holiday(self, day: date) -> bool:
        return bool(jpholiday.is_holiday(day))
