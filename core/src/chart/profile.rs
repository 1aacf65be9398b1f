//! Column roles read from the rows themselves: what each value looks like, and what the column's
//! name says when the values alone are ambiguous (a year is also a number; an id is also a number).

use std::collections::HashSet;

use super::instant::normalize_instant;
use crate::catalog::identifier_words;
use serde_json::{Map, Value};

/// What a column is for, as far as charts are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Temporal(TimeKind),
    /// A number worth plotting as a quantity.
    Measure,
    /// Labels, flags, mixed or nested values.
    Category,
    /// Id-like name and one value per row: names rows, measures nothing.
    Identifier,
    /// Every value is NULL.
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// Dates and timestamps (also year-month strings), plotted on a time axis.
    Instant,
    /// Whole years such as 2021.
    Year,
    /// Month names such as "Jan" or "March", in calendar order.
    MonthName,
    /// Month, quarter, week, day or hour numbers, or periods such as "2023-Q1": ordered buckets.
    Bucket,
}

/// One cell, classified.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Null,
    Number(f64),
    Instant,
    MonthName,
    Period,
    Bool,
    Text,
}

/// What the rows say about one column.
#[derive(Debug, Clone)]
pub struct ColumnProfile {
    pub name: String,
    pub role: Role,
    pub non_null: usize,
    pub distinct: usize,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub has_negative: bool,
    pub all_integers: bool,
    /// Longest value, in characters, as it would be printed.
    pub max_len: usize,
    pub mean_len: f64,
    /// Some values were PostgreSQL intervals, read as (fractional) days.
    pub in_days: bool,
}

impl ColumnProfile {
    pub fn is_unique(&self) -> bool {
        self.non_null > 0 && self.distinct == self.non_null
    }
    pub fn is_label(&self) -> bool {
        matches!(self.role, Role::Category | Role::Identifier)
    }
}

#[derive(Default)]
struct Tally {
    non_null: usize,
    numbers: usize,
    integers: usize,
    instants: usize,
    month_names: usize,
    periods: usize,
    bools: usize,
    texts: usize,
    min: f64,
    max: f64,
    sum: f64,
    negatives: usize,
    intervals: usize,
    total_len: usize,
    max_len: usize,
    distinct: HashSet<String>,
}

/// Column names in first-seen order across `rows`.
pub fn column_names(rows: &[&Map<String, Value>]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !seen.contains(key.as_str()) {
                seen.insert(key.clone());
                names.push(key.clone());
            }
        }
    }
    names
}

/// Profiles every column over `rows` in one pass per column. `temporal_hint` names columns the SQL
/// computes with extract/date_part, which are time buckets whatever they are called.
pub fn profile(name: &str, rows: &[&Map<String, Value>], temporal_hint: bool) -> ColumnProfile {
    let mut t = Tally { min: f64::INFINITY, max: f64::NEG_INFINITY, ..Tally::default() };
    for row in rows {
        let value = row.get(name).unwrap_or(&Value::Null);
        let cell = classify(value);
        if cell == Cell::Null {
            continue;
        }
        if matches!(value, Value::String(s) if parse_number(s).is_none()) && matches!(cell, Cell::Number(_)) {
            t.intervals += 1;
        }
        t.non_null += 1;
        let printed = display_text(value);
        let len = printed.chars().count();
        t.total_len += len;
        t.max_len = t.max_len.max(len);
        t.distinct.insert(printed);
        match cell {
            Cell::Number(x) => {
                t.numbers += 1;
                if x.fract() == 0.0 {
                    t.integers += 1;
                }
                t.min = t.min.min(x);
                t.max = t.max.max(x);
                t.sum += x;
                if x < 0.0 {
                    t.negatives += 1;
                }
            }
            Cell::Instant => t.instants += 1,
            Cell::MonthName => t.month_names += 1,
            Cell::Period => t.periods += 1,
            Cell::Bool => t.bools += 1,
            Cell::Text | Cell::Null => t.texts += 1,
        }
    }
    let role = decide_role(name, &t, temporal_hint);
    let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
    ColumnProfile {
        name: name.to_string(),
        role,
        non_null: t.non_null,
        distinct: t.distinct.len(),
        min: finite(t.min),
        max: finite(t.max),
        sum: t.sum,
        has_negative: t.negatives > 0,
        all_integers: t.non_null > 0 && t.integers == t.non_null,
        max_len: t.max_len,
        mean_len: if t.non_null == 0 { 0.0 } else { t.total_len as f64 / t.non_null as f64 },
        in_days: t.intervals > 0,
    }
}

fn decide_role(name: &str, t: &Tally, temporal_hint: bool) -> Role {
    let n = t.non_null;
    if n == 0 {
        return Role::Empty;
    }
    let unique = t.distinct.len() == n;
    if t.numbers == n {
        if t.integers == n {
            if let Some(kind) = time_bucket(name, t.min, t.max, temporal_hint) {
                return Role::Temporal(kind);
            }
        }
        if is_id_name(name) {
            return if unique { Role::Identifier } else { Role::Category };
        }
        return Role::Measure;
    }
    if t.instants == n {
        return Role::Temporal(TimeKind::Instant);
    }
    if t.month_names == n {
        return Role::Temporal(TimeKind::MonthName);
    }
    if t.periods == n {
        return Role::Temporal(TimeKind::Bucket);
    }
    if unique && t.bools == 0 && is_id_name(name) {
        return Role::Identifier;
    }
    Role::Category
}

/// Whole numbers that are points in time: years under a name that says so, or month/quarter/week/
/// day/hour numbers in their range under such a name.
fn time_bucket(name: &str, min: f64, max: f64, temporal_hint: bool) -> Option<TimeKind> {
    let tokens = identifier_words(name);
    let has = |words: &[&str]| tokens.iter().any(|t| words.contains(&t.as_str()));
    let within = |lo: f64, hi: f64| min >= lo && max <= hi;
    let year_name = tokens.iter().any(|t| t.contains("year")) || has(&["yr", "yyyy", "fy"]);
    if (year_name || temporal_hint) && within(1800.0, 2200.0) {
        return Some(TimeKind::Year);
    }
    let bucket = (has(&["month", "mon", "mnth"]) && within(1.0, 12.0))
        || (has(&["quarter", "qtr"]) && within(1.0, 4.0))
        || (has(&["week", "wk", "isoweek", "weeknum"]) && within(0.0, 53.0))
        || (has(&["day", "dow", "weekday", "isodow"]) && within(0.0, 31.0))
        || (has(&["hour", "hr"]) && within(0.0, 23.0));
    (bucket || temporal_hint).then_some(TimeKind::Bucket)
}

/// Words ending in "id" that are not identifiers.
const NOT_ID_WORDS: &[&str] = &[
    "paid", "unpaid", "prepaid", "valid", "invalid", "bid", "grid", "hybrid", "liquid", "fluid", "solid", "rapid",
    "avoid", "void", "humid", "mid", "acid", "squid", "kid", "lid", "said", "laid", "maid", "raid", "rid", "covid",
];

pub fn is_id_name(name: &str) -> bool {
    let tokens = identifier_words(name);
    let Some(last) = tokens.last() else {
        return false;
    };
    if ["id", "uuid", "guid", "key", "pk", "code", "sku", "isbn"].contains(&last.as_str()) {
        return true;
    }
    // Run-together names such as "aid", "custid" or "sbtickerid".
    last.len() >= 3 && last.ends_with("id") && !NOT_ID_WORDS.contains(&last.as_str())
}

fn classify(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::Bool(_) => Cell::Bool,
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).map_or(Cell::Text, Cell::Number),
        Value::String(s) => {
            if let Some(x) = parse_quantity(s) {
                Cell::Number(x)
            } else if normalize_instant(s).is_some() {
                Cell::Instant
            } else if month_index(s).is_some() {
                Cell::MonthName
            } else if is_period(s) {
                Cell::Period
            } else {
                Cell::Text
            }
        }
        Value::Array(_) | Value::Object(_) => Cell::Text,
    }
}

/// A value as text: strings as they are, anything else as JSON.
pub fn display_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The number in a numeric string: "12.50", "-3", "1e6", " 42 ", "$1,234.50" (PostgreSQL's money).
/// Zero-padded integers ("007", "02134") are codes, not numbers.
pub fn parse_number(text: &str) -> Option<f64> {
    let s = text.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s.strip_prefix('+').unwrap_or(s)),
    };
    let rest = rest.strip_prefix(['$', '€', '£']).unwrap_or(rest);
    let digits: String = if rest.contains(',') {
        let int_part = rest.split(['.', 'e', 'E']).next().unwrap_or("");
        let groups: Vec<&str> = int_part.split(',').collect();
        let well_grouped =
            groups.first().is_some_and(|g| (1..=3).contains(&g.len())) && groups.iter().skip(1).all(|g| g.len() == 3);
        if !well_grouped {
            return None;
        }
        rest.replace(',', "")
    } else {
        rest.to_string()
    };
    let first_digit = digits.chars().next()?;
    if !first_digit.is_ascii_digit() && first_digit != '.' {
        return None;
    }
    if !digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) {
        return None;
    }
    let int_len = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    if int_len > 1 && digits.starts_with('0') {
        return None;
    }
    format!("{sign}{digits}").parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A number, or an interval as PostgreSQL prints it, in days.
pub fn parse_quantity(text: &str) -> Option<f64> {
    parse_number(text).or_else(|| parse_interval_days(text))
}

/// PostgreSQL's default interval output ("762 days 12:30:00", "1 year 2 mons -3 days", "-00:30:00"
/// after a unit) in days. At least one unit word is required: a bare "12:30:00" is a time of day.
fn parse_interval_days(text: &str) -> Option<f64> {
    const DAYS_PER_UNIT: [(&str, f64); 6] =
        [("years", 365.25), ("year", 365.25), ("mons", 30.0), ("mon", 30.0), ("days", 1.0), ("day", 1.0)];
    let mut words = text.split_whitespace().peekable();
    let mut days = 0.0;
    let mut units = 0;
    while let Some(word) = words.next() {
        if word.contains(':') {
            let negative = word.starts_with('-');
            let parts: Vec<f64> =
                word.trim_start_matches(['-', '+']).split(':').map(|p| p.parse::<f64>().ok()).collect::<Option<_>>()?;
            let [h, m, sec] = match parts.as_slice() {
                [h, m] => [*h, *m, 0.0],
                [h, m, sec] => [*h, *m, *sec],
                _ => return None,
            };
            let fraction = (h + m / 60.0 + sec / 3600.0) / 24.0;
            days += if negative { -fraction } else { fraction };
            if words.peek().is_some() {
                return None;
            }
            continue;
        }
        let amount: f64 = word.parse().ok()?;
        let unit = words.next()?;
        let (_, per) = DAYS_PER_UNIT.iter().find(|(u, _)| *u == unit)?;
        days += amount * per;
        units += 1;
    }
    (units > 0 && days.is_finite()).then_some(days)
}

/// Year-first quarters and ISO weeks ("2023-Q1", "2023 Q4", "2023-W07"), which sort as text.
fn is_period(text: &str) -> bool {
    let s = text.trim().to_ascii_uppercase();
    let (Some(year), Some(rest)) = (s.get(..4), s.get(4..)) else {
        return false;
    };
    let rest = rest.trim_start_matches(['-', ' ']);
    let number = |digits: &str, max: u32| digits.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n));
    year.chars().all(|c| c.is_ascii_digit())
        && (rest.strip_prefix('Q').is_some_and(|q| q.len() == 1 && number(q, 4))
            || rest.strip_prefix('W').is_some_and(|w| w.len() == 2 && number(w, 53)))
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// 0-based calendar position of a month name or its abbreviation ("Jan", "Sept", "MARCH").
const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// 0 for Monday .. 6 for Sunday, from a full or abbreviated (3+ letters) English day name.
pub fn weekday_index(text: &str) -> Option<usize> {
    let lower = text.trim().trim_end_matches('.').to_lowercase();
    if lower.len() < 3 {
        return None;
    }
    WEEKDAYS.iter().position(|d| *d == lower || d.starts_with(lower.as_str()))
}

pub fn month_index(text: &str) -> Option<usize> {
    let lower = text.trim().trim_end_matches('.').to_lowercase();
    if lower.len() < 3 {
        return None;
    }
    MONTHS.iter().position(|m| *m == lower || (lower.len() <= 4 && m.starts_with(lower.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_names() {
        assert_eq!(weekday_index("Mon"), Some(0));
        assert_eq!(weekday_index("sunday"), Some(6));
        assert_eq!(weekday_index("Thu."), Some(3));
        assert_eq!(weekday_index("mo"), None);
        assert_eq!(weekday_index("moon"), None);
    }

    #[test]
    fn numeric_strings() {
        assert_eq!(parse_number("12.50"), Some(12.5));
        assert_eq!(parse_number(" -3 "), Some(-3.0));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("$1,234.50"), Some(1234.5));
        assert_eq!(parse_number("-$5.00"), Some(-5.0));
        assert_eq!(parse_number("0.25"), Some(0.25));
        assert_eq!(parse_number("0"), Some(0.0));
        assert_eq!(parse_quantity("2 days 12:00:00"), Some(2.5));
        assert_eq!(parse_quantity("1 year 2 mons -3 days"), Some(365.25 + 60.0 - 3.0));
        assert_eq!(parse_quantity("1 day -06:00:00"), Some(0.75));
        for text in ["12:30:00", "3 weeks", "days", "2 days 1:2:3:4", "2 days 10:00 x"] {
            assert_eq!(parse_quantity(text), None, "{text}");
        }
        for text in ["007", "02134", "1,23", "abc", "", "NaN", "inf", "12abc", "C002", "-", "1.2.3", "2023-01-01"] {
            assert_eq!(parse_number(text), None, "{text}");
        }
    }

    #[test]
    fn months_and_names() {
        assert_eq!(month_index("Sept"), Some(8));
        assert_eq!(month_index("March    "), Some(2));
        assert_eq!(month_index("Ma"), None);
        assert_eq!(month_index("Marchx"), None);
        assert!(is_period("2023-Q1") && is_period("2023 q4") && is_period("2023-W07"));
        assert!(!is_period("2023-Q5") && !is_period("Q1 2023") && !is_period("2023-W7"));
        assert_eq!(identifier_words("orderMonth_total"), ["order", "month", "total"]);
        assert!(
            is_id_name("sbCustId")
                && is_id_name("customer_id")
                && is_id_name("sbtickerid")
                && is_id_name("id")
                && is_id_name("aid")
        );
        assert!(!is_id_name("paid") && !is_id_name("bid") && !is_id_name("did_count") && !is_id_name("width"));
    }
}
