# Calendar arithmetic without a time zone database (the ESP32 has none).
#
# Times are UTC tuples (year, month, day, hour, minute, second), as time.gmtime()[:6]
# returns them on the device once ntptime has set the clock. Seconds are counted from
# 1970-01-01 with our own arithmetic, so MicroPython's 2000 epoch never matters.


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if month <= 2:
        year -= 1
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def seconds(t):
    """Seconds since 1970-01-01T00:00:00Z of a UTC tuple."""
    return days_from_civil(t[0], t[1], t[2]) * 86400 + t[3] * 3600 + t[4] * 60 + t[5]


def _digits(text, start, count):
    part = text[start : start + count]
    if len(part) != count:
        raise ValueError("short")
    for ch in part:
        if not "0" <= ch <= "9":
            raise ValueError("not a digit")
    return int(part)


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_utc(text):
    """'2026-11-25T14:03:00Z' (optionally with a fraction, or +00:00) -> seconds since 1970."""
    if not isinstance(text, str) or not 20 <= len(text) <= 35:
        raise ValueError("not a UTC time")
    for pos, ch in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":")):
        if text[pos] != ch:
            raise ValueError("not a UTC time")
    year = _digits(text, 0, 4)
    month = _digits(text, 5, 2)
    day = _digits(text, 8, 2)
    hour = _digits(text, 11, 2)
    minute = _digits(text, 14, 2)
    second = _digits(text, 17, 2)
    rest = text[19:]
    if rest.startswith("."):
        end = 1
        while end < len(rest) and "0" <= rest[end] <= "9":
            end += 1
        if not 2 <= end <= 10:
            raise ValueError("bad fraction")
        rest = rest[end:]
    if rest not in ("Z", "+00:00"):
        raise ValueError("not UTC")
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS_IN_MONTH[month - 1]:
        raise ValueError("no such date")
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        raise ValueError("no such date")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError("no such time")
    return seconds((year, month, day, hour, minute, second))


def format_utc(t):
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (t[0], t[1], t[2], t[3], t[4], t[5])


def _last_sunday(year, month):
    # Only used for March and October, both 31 days long. 1970-01-01 was a Thursday.
    weekday = (days_from_civil(year, month, 31) + 4) % 7  # 0 = Sunday
    return 31 - weekday


def eu_summer_time(t):
    """True between 01:00 UTC on the last Sunday of March and of October."""
    year, month = t[0], t[1]
    if month < 3 or month > 10:
        return False
    if 3 < month < 10:
        return True
    switch = (year, month, _last_sunday(year, month), 1, 0, 0)
    after = seconds(t) >= seconds(switch)
    return after if month == 3 else not after


def local_minutes(t, offset_minutes, dst):
    """Minutes after local midnight for a UTC tuple, a standard offset and a DST rule."""
    offset = offset_minutes
    if dst == "eu" and eu_summer_time(t):
        offset += 60
    return (t[3] * 60 + t[4] + offset) % 1440


def in_window(minute, window):
    """True when minute-of-day lies in [start, end); the window may wrap past midnight."""
    start, end = window
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end
