//! Dates and timestamps as PostgreSQL and JSON print them ("2023-01-31", "2023-01",
//! "2023-01-31 12:00:00+02", "2023-01-31T12:00:00.5Z"), rewritten to ECMAScript's date-time string
//! format, the one form every browser parses alike: "YYYY-MM-DDTHH:MM:SS[.sss]" and, when the
//! value has one, its offset as "Z" or "±HH:MM". A value with an offset (timestamptz) names an
//! instant and keeps it, so the chart places it right and shows it in the viewer's time zone; a
//! value without one (date, timestamp) is a wall-clock reading and stays one.

/// Where a timestamp's clock reading sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    /// No offset: a wall-clock reading.
    Local,
    /// "Z".
    Utc,
    /// Seconds east of UTC, as printed ("+02", "-05:30", "+00:53:28" for local mean time).
    Offset(i32),
}

/// A calendar date and a time of day, in the parts the output needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    year: i32,
    month: u32,
    day: u32,
    second_of_day: i32,
}

const SECONDS_PER_DAY: i32 = 86_400;

/// The browser-safe form of a date or timestamp, or None when `text` is not one.
pub fn normalize_instant(text: &str) -> Option<String> {
    let s = text.trim();
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| b.get(range.clone()).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let number = |range: std::ops::Range<usize>| s.get(range).and_then(|d| d.parse::<u32>().ok());
    if !(digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7)) {
        return None;
    }
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = number(5..7).filter(|m| (1..=12).contains(m))?;
    if b.len() == 7 {
        return Some(format!("{}-{month:02}-01T00:00:00", year_text(year)));
    }
    if !(b.get(7) == Some(&b'-') && digits(8..10)) {
        return None;
    }
    let day = number(8..10).filter(|&d| d >= 1 && d <= days_in_month(year, month))?;
    let date = Reading { year, month, day, second_of_day: 0 };
    if b.len() == 10 {
        return Some(format(date, "", Zone::Local));
    }
    if !(matches!(b.get(10), Some(b'T' | b' ')) && digits(11..13) && b.get(13) == Some(&b':') && digits(14..16)) {
        return None;
    }
    let (hour, minute) = (number(11..13).filter(|&h| h <= 23)?, number(14..16).filter(|&m| m <= 59)?);
    let rest = &s[16..];
    let (second, fraction, zone) = match rest.strip_prefix(':') {
        Some(r) => {
            let end = r.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(r.len());
            let (second, fraction) = seconds(&r[..end])?;
            (second, fraction, &r[end..])
        }
        None => (0, String::new(), rest),
    };
    let zone = parse_zone(zone)?;
    let second_of_day = i32::try_from(hour * 3600 + minute * 60 + second).ok()?;
    Some(format(Reading { second_of_day, ..date }, &fraction, zone))
}

/// Whether a normalized value is a wall-clock midnight (a date, or a timestamp without offset at
/// 00:00:00): such columns print as dates.
pub fn is_local_midnight(normalized: &str) -> bool {
    normalized.len() == "YYYY-MM-DDT00:00:00".len() && normalized.ends_with("T00:00:00")
}

/// Whole seconds (at most 59) and the fraction as milliseconds ("" or ".sss"; finer digits are
/// dropped, as a browser keeps milliseconds only) from "SS" or "SS.f...".
fn seconds(text: &str) -> Option<(u32, String)> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.len() != 2 || !whole.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let second = whole.parse::<u32>().ok().filter(|&s| s <= 59)?;
    if text.contains('.') && (fraction.is_empty() || !fraction.bytes().all(|c| c.is_ascii_digit())) {
        return None;
    }
    let millis = if fraction.is_empty() { String::new() } else { format!(".{:0<3.3}", fraction) };
    Some((second, millis))
}

/// "", "Z", "+02", "-05:30", "+0530", "+00:53:28".
fn parse_zone(zone: &str) -> Option<Zone> {
    match zone {
        "" => return Some(Zone::Local),
        "Z" => return Some(Zone::Utc),
        _ => {}
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let compact = rest.replace(':', "");
    if !matches!(compact.len(), 2 | 4 | 6) || !compact.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let part = |i: usize| compact.get(i..i + 2).map_or(Some(0), |p| p.parse::<i32>().ok());
    let (hours, minutes, seconds) = (part(0)?, part(2)?, part(4)?);
    if hours > 15 || minutes > 59 || seconds > 59 {
        return None;
    }
    Some(Zone::Offset(sign * (hours * 3600 + minutes * 60 + seconds)))
}

/// The output form. ECMAScript offsets have no seconds: an offset such as local mean time's
/// +00:53:28 keeps its hours and minutes and the clock reading moves by the seconds left over,
/// which names the same instant.
fn format(reading: Reading, fraction: &str, zone: Zone) -> String {
    let (reading, zone_text) = match zone {
        Zone::Local => (reading, String::new()),
        Zone::Utc => (reading, "Z".to_string()),
        Zone::Offset(offset) => {
            let leftover = offset % 60;
            let minutes = (offset - leftover) / 60;
            let sign = if minutes < 0 { '-' } else { '+' };
            (shifted(reading, -leftover), format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60))
        }
    };
    let Reading { year, month, day, second_of_day } = reading;
    let (hour, minute, second) = (second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    format!("{}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone_text}", year_text(year))
}

/// The reading `by` seconds later (less than a day either way).
fn shifted(reading: Reading, by: i32) -> Reading {
    let second_of_day = reading.second_of_day + by;
    let Reading { mut year, mut month, mut day, .. } = reading;
    if second_of_day < 0 {
        if day > 1 {
            day -= 1;
        } else {
            (year, month) = if month > 1 { (year, month - 1) } else { (year - 1, 12) };
            day = days_in_month(year, month);
        }
    } else if second_of_day >= SECONDS_PER_DAY {
        if day < days_in_month(year, month) {
            day += 1;
        } else {
            (year, month, day) = if month < 12 { (year, month + 1, 1) } else { (year + 1, 1, 1) };
        }
    }
    Reading { year, month, day, second_of_day: second_of_day.rem_euclid(SECONDS_PER_DAY) }
}

/// Four digits, or ECMAScript's six-digit signed form for years a shift moved out of 0..=9999.
fn year_text(year: i32) -> String {
    if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{}{:06}", if year < 0 { '-' } else { '+' }, year.abs())
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(text: &str) -> Option<String> {
        normalize_instant(text)
    }

    #[test]
    fn dates_and_wall_clock_times_stay_local() {
        assert_eq!(normalized("2023-01-31").as_deref(), Some("2023-01-31T00:00:00"));
        assert_eq!(normalized("2023-01").as_deref(), Some("2023-01-01T00:00:00"));
        assert_eq!(normalized(" 2024-02-29 08:05 ").as_deref(), Some("2024-02-29T08:05:00"));
        assert_eq!(normalized("2023-01-31 12:30:00.123456").as_deref(), Some("2023-01-31T12:30:00.123"));
        assert_eq!(normalized("2023-01-31T12:30:00.5").as_deref(), Some("2023-01-31T12:30:00.500"));
    }

    #[test]
    fn offsets_are_kept() {
        assert_eq!(normalized("2023-01-31 12:30:00+02").as_deref(), Some("2023-01-31T12:30:00+02:00"));
        assert_eq!(normalized("2023-01-31 12:30:00-08").as_deref(), Some("2023-01-31T12:30:00-08:00"));
        assert_eq!(normalized("2023-01-31T12:30:00.25+00:00").as_deref(), Some("2023-01-31T12:30:00.250+00:00"));
        assert_eq!(normalized("2023-01-31T12:30Z").as_deref(), Some("2023-01-31T12:30:00Z"));
        assert_eq!(normalized("2000-01-01 00:00:00+0530").as_deref(), Some("2000-01-01T00:00:00+05:30"));
        assert_eq!(normalized("1990-06-01 12:00:00-03:30").as_deref(), Some("1990-06-01T12:00:00-03:30"));
        assert_eq!(normalized("9999-12-31 23:59:59.999999+14:00").as_deref(), Some("9999-12-31T23:59:59.999+14:00"));
    }

    #[test]
    fn offsets_with_seconds_move_the_clock_reading() {
        // Berlin's local mean time: 12:00:00+00:53:28 is 11:06:32 UTC, which is 11:59:32+00:53.
        assert_eq!(normalized("1890-01-01 12:00:00+00:53:28").as_deref(), Some("1890-01-01T11:59:32+00:53"));
        // New York's: 23:59:50-04:56:02 is 04:55:52 UTC next day, which is 23:59:52-04:56.
        assert_eq!(normalized("1870-12-31 23:59:50-04:56:02").as_deref(), Some("1870-12-31T23:59:52-04:56"));
        assert_eq!(normalized("1870-12-31 23:59:59-00:00:30").as_deref(), Some("1871-01-01T00:00:29+00:00"));
        assert_eq!(normalized("1880-03-01 00:00:10+00:00:30").as_deref(), Some("1880-02-29T23:59:40+00:00"));
        assert_eq!(normalized("0000-01-01 00:00:00+00:00:01").as_deref(), Some("-000001-12-31T23:59:59+00:00"));
    }

    #[test]
    fn not_dates() {
        for text in [
            "2023-13-01",
            "2023-02-30",
            "2023-1-1",
            "20230101",
            "762 days 12:30:00",
            "2023-01-31 noon",
            "2023",
            "2023-01-31 24:00:00",
            "2023-01-31 12:60",
            "2023-01-31 12:00:61",
            "2023-01-31 12:00:00.",
            "2023-01-31 12:00:00+2",
            "2023-01-31 12:00:00+99",
            "2023-01-31 12:00:00 CET",
            "0044-03-15 BC",
        ] {
            assert_eq!(normalized(text), None, "{text}");
        }
    }

    #[test]
    fn local_midnights() {
        assert!(is_local_midnight("2023-01-31T00:00:00"));
        assert!(!is_local_midnight("2023-01-31T00:00:00+02:00"));
        assert!(!is_local_midnight("2023-01-31T00:00:00.500"));
        assert!(!is_local_midnight("2023-01-31T10:00:00"));
    }
}
