"""Named time intervals, as Alertmanager's ``time_intervals`` (and the older
``mute_time_intervals``): a route with ``mute_time_intervals`` sends nothing
while one of them holds; one with ``active_time_intervals`` sends only while
one of them holds. An interval holds when every field it sets matches the time
(``times``, ``weekdays``, ``days_of_month``, ``months``, ``years``, read in
``location``, UTC by default); a named set holds when any of its intervals does.

Ranges are inclusive (``monday:friday``, ``1:5``, ``-3:-1`` = the last three
days of the month), except ``times``, whose ``end_time`` is exclusive
(``start_time: "09:00", end_time: "17:00"``; ``24:00`` ends at midnight)."""
from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_TIME = re.compile(r"^(\d{2}):(\d{2})$")


def _split(text: Any, what: str) -> tuple[str, str]:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a value or a range like 'a:b', got {text!r}")
    parts = text.strip().lower().split(":")
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not a value or a range 'a:b'")
    return parts[0].strip(), parts[1].strip()


def _named(value: str, names: tuple[str, ...], what: str, numeric: bool) -> int:
    if value in names:
        return names.index(value) + 1
    if numeric and re.fullmatch(r"\d+", value) and 1 <= int(value) <= len(names):
        return int(value)
    raise ValueError(f"unknown {what.rstrip('s')} {value!r} (use {names[0]} … {names[-1]})")


def _weekday_range(v: Any) -> tuple[int, int]:
    a, b = _split(v, "weekdays")
    lo, hi = _named(a, WEEKDAYS, "weekdays", False), _named(b, WEEKDAYS, "weekdays", False)
    if lo > hi:
        raise ValueError(f"range {v!r} starts after it ends (weeks run monday to sunday)")
    return lo, hi


def _month_range(v: Any) -> tuple[int, int]:
    a, b = _split(v, "months")
    lo, hi = _named(a, MONTHS, "months", True), _named(b, MONTHS, "months", True)
    if lo > hi:
        raise ValueError(f"range {v!r} starts after it ends")
    return lo, hi


def _int(value: str, what: str) -> int:
    if not re.fullmatch(r"-?\d+", value):
        raise ValueError(f"{value!r} is not a number")
    return int(value)


def _day_range(v: Any) -> tuple[int, int]:
    a, b = _split(v, "days_of_month")
    lo, hi = _int(a, "days_of_month"), _int(b, "days_of_month")
    for d in (lo, hi):
        if d == 0 or not -31 <= d <= 31:
            raise ValueError(f"{d} is not a day (1 to 31, or -1 to -31 counting from the end)")
    if lo < 0 < hi:
        raise ValueError(f"{v!r}: end day must be negative if start day is negative")
    if (lo > 0) == (hi > 0) and lo > hi:
        raise ValueError(f"range {v!r} starts after it ends")
    return lo, hi


def _year_range(v: Any) -> tuple[int, int]:
    a, b = _split(v, "years")
    lo, hi = _int(a, "years"), _int(b, "years")
    if lo > hi:
        raise ValueError(f"range {v!r} starts after it ends")
    return lo, hi


def _range_text(names: tuple[str, ...] | None):
    def fmt(r: tuple[int, int]) -> str:
        a, b = (names[r[0] - 1], names[r[1] - 1]) if names else (str(r[0]), str(r[1]))
        return a if r[0] == r[1] else f"{a}:{b}"
    return fmt


WeekdayRange = Annotated[tuple[int, int], BeforeValidator(_weekday_range),
                         PlainSerializer(_range_text(WEEKDAYS), return_type=str)]
MonthRange = Annotated[tuple[int, int], BeforeValidator(_month_range),
                       PlainSerializer(_range_text(MONTHS), return_type=str)]
DayRange = Annotated[tuple[int, int], BeforeValidator(_day_range), PlainSerializer(_range_text(None), return_type=str)]
YearRange = Annotated[tuple[int, int], BeforeValidator(_year_range), PlainSerializer(_range_text(None), return_type=str)]


def _minutes(v: Any, what: str) -> int:
    m = _TIME.match(str(v).strip()) if isinstance(v, str) else None
    if not m:
        raise ValueError(f"expected HH:MM (00:00 to 24:00), got {v!r}")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and mi):
        raise ValueError(f"{v!r} is not a time of day (00:00 to 24:00)")
    return h * 60 + mi


class TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: Annotated[int, BeforeValidator(lambda v: _minutes(v, "start_time")),
                          PlainSerializer(lambda m: f"{m // 60:02d}:{m % 60:02d}", return_type=str)]
    end_time: Annotated[int, BeforeValidator(lambda v: _minutes(v, "end_time")),
                        PlainSerializer(lambda m: f"{m // 60:02d}:{m % 60:02d}", return_type=str)]

    def model_post_init(self, _: Any) -> None:
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time (an interval over midnight is two ranges: "
                             "'22:00'-'24:00' and '00:00'-'06:00')")


class TimeInterval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[WeekdayRange] = Field(default_factory=list)
    days_of_month: list[DayRange] = Field(default_factory=list)
    months: list[MonthRange] = Field(default_factory=list)
    years: list[YearRange] = Field(default_factory=list)
    location: str = "UTC"

    @field_validator("location")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo("UTC" if v == "Local" else v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like Europe/Berlin)") from None
        return v

    def contains(self, t: float) -> bool:
        zone = dt.timezone.utc if self.location in ("UTC", "Local") else ZoneInfo(self.location)
        when = dt.datetime.fromtimestamp(t, zone)
        if self.times:
            minute = when.hour * 60 + when.minute
            if not any(r.start_time <= minute < r.end_time for r in self.times):
                return False
        if self.weekdays and not any(lo <= when.isoweekday() <= hi for lo, hi in self.weekdays):
            return False
        if self.days_of_month:
            last = calendar.monthrange(when.year, when.month)[1]

            def day(d: int) -> int:
                return d if d > 0 else last + d + 1
            if not any(day(lo) <= when.day <= min(day(hi), last) for lo, hi in self.days_of_month):
                return False
        if self.months and not any(lo <= when.month <= hi for lo, hi in self.months):
            return False
        if self.years and not any(lo <= when.year <= hi for lo, hi in self.years):
            return False
        return True


class NamedTimeInterval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    time_intervals: list[TimeInterval] = Field(default_factory=list)

    def contains(self, t: float) -> bool:
        return any(ti.contains(t) for ti in self.time_intervals)


class IntervalSet:
    """Named intervals by name, asked at send time whether a route may send."""

    def __init__(self, intervals: list[NamedTimeInterval]):
        self._by_name = {i.name: i for i in intervals}

    def active(self, name: str, t: float) -> bool:
        i = self._by_name.get(name)
        return i is not None and i.contains(t)

    def may_send(self, mute: tuple[str, ...], active: tuple[str, ...], t: float) -> bool:
        if any(self.active(n, t) for n in mute):
            return False
        if active and not any(self.active(n, t) for n in active):
            return False
        return True
