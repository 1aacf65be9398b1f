//! Answers in words from templates, and follow-up questions built from the same table's columns
//! in phrasings the planner itself understands.

use serde_json::Value;

use crate::catalog::Catalog;
use crate::result::ResultSet;

use super::query::{number, Agg, ColRef, Filter, GroupKey, MatchMode, Measure, OrderKey, Query, Ratio, Unit};
use super::schema::{label_column, Vocab};
use super::{AnswerKind, AnswerTemplate};

/// Rows named in a sentence before "and N more".
const MAX_NAMED: usize = 10;

pub(crate) fn plural(noun: &str) -> String {
    if noun.ends_with('s') && !noun.ends_with("ss") && !noun.ends_with("us") {
        noun.to_string()
    } else if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("ch") || noun.ends_with("sh") {
        format!("{noun}es")
    } else if noun.ends_with('y') && !noun.ends_with("ay") && !noun.ends_with("ey") && !noun.ends_with("oy") {
        format!("{}ies", &noun[..noun.len() - 1])
    } else {
        format!("{noun}s")
    }
}

/// A table's name as one of its rows ("categories" -> "category").
pub(crate) fn singular(noun: &str) -> String {
    if let Some(stem) = noun.strip_suffix("ies") {
        format!("{stem}y")
    } else if noun.ends_with("sses") || noun.ends_with("xes") || noun.ends_with("ches") || noun.ends_with("shes") {
        noun[..noun.len() - 2].to_string()
    } else if noun.ends_with('s') && !noun.ends_with("ss") && !noun.ends_with("us") {
        noun[..noun.len() - 1].to_string()
    } else {
        noun.to_string()
    }
}

fn ratio_words(vocab: &Vocab, q: &Query, subject: &str, r: &Ratio) -> String {
    let part =
        |filters: &[Filter]| filters.iter().map(|f| condition_words(vocab, q, f)).collect::<Vec<_>>().join(" and ");
    match (r.percent, r.denominator.is_empty()) {
        (true, true) => format!("percentage of {subject} where {}", part(&r.numerator)),
        (true, false) => {
            format!("percentage of {subject} where {} among those where {}", part(&r.numerator), part(&r.denominator))
        }
        (false, true) => format!("share of {subject} where {}", part(&r.numerator)),
        (false, false) => {
            format!("ratio of {subject} where {} to those where {}", part(&r.numerator), part(&r.denominator))
        }
    }
}

fn measure_words(vocab: &Vocab, subject: &str, q: &Query, m: &Measure) -> String {
    let col = |c: Option<ColRef>| c.map(|c| vocab.column_label(c.table, c.column)).unwrap_or_default();
    if let (Some(to), Some((from, unit))) = (m.column, m.since) {
        let agg = match m.agg {
            Agg::Min => "shortest",
            Agg::Max => "longest",
            _ => "average",
        };
        return format!("{agg} number of {} from {} to {}", unit.name(), col(Some(from)), col(Some(to)));
    }
    if let (Agg::PerRow, Some((parent, _))) = (m.agg, &q.per_row) {
        let what = if q.line_quantity(m).is_some() { "value".to_string() } else { col(m.column) };
        return format!("average {what} per {}", singular(&vocab.table_label(*parent)));
    }
    if q.line_quantity(m).is_some() {
        return "total value".into();
    }
    match m.agg {
        Agg::PerRow => format!("average {}", col(m.column)),
        Agg::Ratio => q.ratio.as_ref().map(|r| ratio_words(vocab, q, subject, r)).unwrap_or_default(),
        Agg::Count => format!("number of {subject}"),
        Agg::CountDistinct => format!("number of distinct {}", plural(&col(m.column))),
        Agg::CountRelated => {
            format!("number of {}", plural(&m.column.map(|c| vocab.table_label(c.table)).unwrap_or_default()))
        }
        Agg::Sum => format!("total {}", col(m.column)),
        Agg::Avg => format!("average {}", col(m.column)),
        Agg::Min => format!("lowest {}", col(m.column)),
        Agg::Max => format!("highest {}", col(m.column)),
    }
}

fn condition_words(vocab: &Vocab, q: &Query, f: &Filter) -> String {
    // A joined table's column is named with its table ("customer city").
    let col = |c: &ColRef| {
        let label = vocab.column_label(c.table, c.column);
        let table = singular(&vocab.table_label(c.table));
        if c.table == q.table || label.starts_with(&table) {
            label
        } else {
            format!("{table} {label}")
        }
    };
    match f {
        Filter::Value { column, value, mode: MatchMode::Exact } => format!("{} is {value}", col(column)),
        Filter::Value { column, value, mode: MatchMode::Contains } => format!("{} contains {value}", col(column)),
        Filter::AnyOf { column, values } => format!("{} is {}", col(column), values.join(" or ")),
        Filter::Not { column, value } => format!("{} is not {value}", col(column)),
        Filter::Number { column, op, value } => format!("{} {} {}", col(column), op.sql(), number(*value)),
        Filter::Year { column, year, .. } => format!("{} in {year}", col(column)),
        Filter::Date { column, op, date } => format!("{} {} {date}", col(column), op.sql()),
        Filter::Recent { column, n, unit } => {
            format!("{} in the last {n} {}{}", col(column), unit.name(), if *n == 1 { "" } else { "s" })
        }
        Filter::Years { column, years, .. } => {
            let list: Vec<String> = years.iter().map(|y| y.to_string()).collect();
            format!("{} in {}", col(column), list.join(" or "))
        }
        Filter::NotExists { table, .. } => format!("with no {}", plural(&vocab.table_label(*table))),
    }
}

pub(crate) fn template(catalog: &Catalog, vocab: &Vocab, q: &Query) -> AnswerTemplate {
    let subject = plural(&vocab.table_label(q.rows_of.unwrap_or(q.table)));
    let measures: Vec<String> = q.measures.iter().map(|m| measure_words(vocab, &subject, q, m)).collect();
    let groups = q
        .groups
        .iter()
        .map(|g| match g {
            // A column of a joined table's rows grouped by is one of their details: shown, not named.
            GroupKey::Column(c)
                if q.groups.iter().any(|g| matches!(g, GroupKey::Entity { label, .. } if label.table == c.table)) =>
            {
                String::new()
            }
            GroupKey::Column(c) => vocab.column_label(c.table, c.column),
            GroupKey::Bucket(_, unit) => unit.name().to_string(),
            GroupKey::Entity { label, .. } => singular(&vocab.table_label(label.table)),
        })
        .collect();
    let group_units = q
        .groups
        .iter()
        .map(|g| match g {
            GroupKey::Bucket(_, unit) => Some(*unit),
            _ => None,
        })
        .collect();
    let kind = if q.is_grouped() {
        AnswerKind::Grouped
    } else if q.measures == [Measure::rows()] {
        AnswerKind::Count
    } else if !q.measures.is_empty() {
        AnswerKind::Aggregate
    } else {
        AnswerKind::List
    };
    let ranked_by = q.order.map(|(key, desc)| {
        let words = match key {
            OrderKey::Measure(i) => measures.get(i).cloned().unwrap_or_default(),
            OrderKey::Column(c) => vocab.column_label(c.table, c.column),
        };
        (words, desc)
    });
    AnswerTemplate {
        kind,
        subject: subject.clone(),
        measures,
        groups,
        group_units,
        conditions: q
            .filters
            .iter()
            .map(|f| condition_words(vocab, q, f))
            .chain(q.having.map(|(op, v)| format!("the number of {subject} {} {}", op.sql(), number(v))))
            .collect(),
        ranked_by,
        ranked_column: ranked_column(q),
        limit: q.limit,
        identifiers: identifier_outputs(vocab, q),
        suggestions: suggestions(catalog, vocab, q, &subject, kind),
    }
}

/// The result column of the order key: a measure after the groups (one column each), or a listed column.
fn ranked_column(q: &Query) -> Option<usize> {
    match q.order?.0 {
        OrderKey::Measure(m) => Some(q.groups.len() + m),
        OrderKey::Column(c) if q.is_grouped() => q.groups.iter().position(|g| {
            matches!(g, GroupKey::Column(x) | GroupKey::Bucket(x, _) | GroupKey::Entity { label: x, .. } if *x == c)
        }),
        OrderKey::Column(c) => q.outputs.iter().position(|x| *x == c),
    }
}

/// Positions of the listed columns that are keys of their table or named like one.
fn identifier_outputs(vocab: &Vocab, q: &Query) -> Vec<usize> {
    if q.is_grouped() {
        return Vec::new();
    }
    q.outputs
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let entry = vocab.view.column(c.table, c.column);
            Some(c.column) == vocab.view.key_column(c.table)
                || entry.key_like
                || vocab.column_words(c.table, c.column) == ["id"]
        })
        .map(|(i, _)| i)
        .collect()
}

/// Words of column names that hold free text, contact details or codes: unique or nearly so per
/// row, never worth a group.
const NEAR_UNIQUE_WORDS: &[&str] = &[
    "description",
    "abstract",
    "comment",
    "comments",
    "note",
    "notes",
    "body",
    "text",
    "url",
    "homepage",
    "email",
    "mail",
    "phone",
    "address",
    "password",
    "sku",
    "code",
    "uuid",
    "guid",
    "hash",
    "token",
    "title",
    "name",
];

/// A column worth counting rows per: short text or an enum, not the rows' name or key, not unique,
/// not a reference to another table, not free text or contact details.
fn groupable(vocab: &Vocab, table: &crate::catalog::Table, t: usize, ci: usize) -> bool {
    let Some(c) = table.columns.get(ci) else { return false };
    let entry = vocab.view.column(t, ci);
    let words = vocab.column_words(t, ci);
    c.is_text()
        && !c.unique
        && !entry.key_like
        && entry.refers_to.is_none()
        && Some(ci) != vocab.view.label_column(t)
        && Some(ci) != vocab.view.key_column(t)
        && !words.iter().any(|w| NEAR_UNIQUE_WORDS.contains(&w.as_str()) || w == "id")
}

/// A numeric column worth averaging: not a key, a reference, a year or unique.
fn measurable(vocab: &Vocab, table: &crate::catalog::Table, t: usize, ci: usize) -> bool {
    let Some(c) = table.columns.get(ci) else { return false };
    let entry = vocab.view.column(t, ci);
    let words = vocab.column_words(t, ci);
    c.is_numeric()
        && !c.unique
        && !entry.key_like
        && entry.refers_to.is_none()
        && Some(ci) != vocab.view.key_column(t)
        && !words.iter().any(|w| w == "id" || w == "year")
}

/// Up to three follow-ups over the same table, in phrasings the planner itself understands: a
/// count per a low-cardinality column, an average of a numeric column, the top 5 by it; never
/// the shape just asked.
fn suggestions(catalog: &Catalog, vocab: &Vocab, q: &Query, subject: &str, kind: AnswerKind) -> Vec<String> {
    let Some(table) = catalog.tables.get(q.table) else { return Vec::new() };
    let label = label_column(vocab, q.table, table);
    let words = |ci: usize| vocab.column_label(q.table, ci);
    let columns = 0..table.columns.len();
    let not_grouped = |ci: usize| !q.groups.contains(&GroupKey::Column(ColRef { table: q.table, column: ci }));
    // Enums first: their values are few by design.
    let group = columns
        .clone()
        .filter(|&ci| groupable(vocab, table, q.table, ci) && not_grouped(ci))
        .min_by_key(|&ci| (table.columns[ci].category != 'E', ci));
    let measure = columns.clone().find(|&ci| measurable(vocab, table, q.table, ci));
    let mut out = Vec::new();
    if let Some(ci) = group {
        out.push(format!("How many {subject} are there per {}?", words(ci)));
    }
    if let Some(ci) = measure {
        if kind != AnswerKind::Aggregate {
            out.push(format!("What is the average {} of {subject}?", words(ci)));
        }
        if label.is_some() && kind != AnswerKind::List {
            out.push(format!("What are the top 5 {subject} by {}?", words(ci)));
        }
    }
    if kind != AnswerKind::Count && out.len() < 3 {
        out.push(format!("How many {subject} are there?"));
    }
    out.truncate(3);
    out
}

/// A value as a reader wants it: thousands separators, two decimals at most.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                group_thousands(&i.to_string())
            } else if let Some(f) = n.as_f64() {
                let rounded = format!("{:.2}", f);
                let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
                let (int, frac) = trimmed.split_once('.').unwrap_or((trimmed, ""));
                if frac.is_empty() {
                    group_thousands(int)
                } else {
                    format!("{}.{frac}", group_thousands(int))
                }
            } else {
                n.to_string()
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A time bucket's value as people write it: `2024` for a year, `2024-03` for a month.
fn show_bucket(v: &Value, unit: Option<Unit>) -> String {
    let text = show(v);
    let keep = match unit {
        Some(Unit::Year) => 4,
        Some(Unit::Month) | Some(Unit::Quarter) => 7,
        _ => return text,
    };
    match text.get(..keep) {
        Some(head) if text.len() >= 10 && text.as_bytes()[4] == b'-' => head.to_string(),
        _ => text,
    }
}

fn group_thousands(digits: &str) -> String {
    let (sign, digits) = digits.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", digits));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// " with no orders where city is Oslo and ...": rows that must not exist first, then the filters.
fn conditions_clause(t: &AnswerTemplate) -> String {
    let (without, filters): (Vec<&String>, Vec<&String>) = t.conditions.iter().partition(|c| c.starts_with("with no "));
    let mut out = String::new();
    for w in without {
        out.push(' ');
        out.push_str(w);
    }
    if !filters.is_empty() {
        out.push_str(" where ");
        out.push_str(&filters.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(" and "));
    }
    out
}

fn named_list(items: Vec<String>, total: usize) -> String {
    let shown = items.len();
    let mut text = items.join(", ");
    if total > shown {
        text.push_str(&format!(" and {} more", total - shown));
    }
    text
}

pub(crate) fn answer(t: &AnswerTemplate, rs: &ResultSet) -> String {
    let where_ = conditions_clause(t);
    match t.kind {
        AnswerKind::Count => {
            let n = rs.rows.first().and_then(|r| r.first()).cloned().unwrap_or(Value::Null);
            let one = n.as_i64() == Some(1);
            let noun =
                if one { t.subject.strip_suffix('s').unwrap_or(&t.subject).to_string() } else { t.subject.clone() };
            format!("There {} {} {noun}{where_}.", if one { "is" } else { "are" }, show(&n))
        }
        AnswerKind::Aggregate => {
            let Some(row) = rs.rows.first() else { return format!("No {} matched{where_}.", t.subject) };
            let parts: Vec<String> =
                t.measures.iter().zip(row).map(|(m, v)| format!("the {m} is {}", show(v))).collect();
            let mut text = format!("For {}{where_}, {}.", t.subject, parts.join(" and "));
            if let Some(first) = text.get(..1) {
                text = first.to_uppercase() + &text[1..];
            }
            text
        }
        _ if rs.rows.is_empty() => format!("No {} matched{where_}.", t.subject),
        AnswerKind::Grouped => grouped_answer(t, rs, &where_),
        AnswerKind::List => list_answer(t, rs, &where_),
    }
}

/// "The city with the highest number of customers is London (29)", "The top 3 ... are: ...".
fn grouped_answer(t: &AnswerTemplate, rs: &ResultSet, where_: &str) -> String {
    let g = t.groups.len();
    let items: Vec<String> = rs
        .rows
        .iter()
        .take(MAX_NAMED)
        .map(|row| {
            let keys: Vec<String> = row
                .iter()
                .take(g)
                .enumerate()
                .map(|(i, v)| show_bucket(v, t.group_units.get(i).copied().flatten()))
                .collect();
            let vals: Vec<String> = row.iter().skip(g).map(show).collect();
            format!("{} ({})", keys.join(" / "), vals.join(", "))
        })
        .collect();
    let measures = t.measures.join(", ");
    let groups = t.groups.iter().filter(|g| !g.is_empty()).cloned().collect::<Vec<_>>().join(" and ");
    let tied = tied_at_the_cut(t, rs);
    match (&t.ranked_by, t.limit) {
        (Some((by, desc)), Some(1)) if tied.is_some() => {
            format!("{} tie for the {} {by}{where_}.", and_list(items, rs.rows.len()), highest(*desc))
        }
        (Some((by, desc)), Some(1)) => {
            format!("The {groups} with the {} {by}{where_} is {}.", highest(*desc), items.join(", "))
        }
        (Some((by, desc)), Some(n)) => format!(
            "The {} {n} {} by {by}{where_} are: {}{}.",
            if *desc { "top" } else { "bottom" },
            if groups.contains(" and ") { format!("combinations of {groups}") } else { plural(&groups) },
            named_list(items, rs.rows.len()),
            tie_note(tied, rs.rows.len())
        ),
        _ => format!("The {measures} by {groups}{where_}: {}.", named_list(items, rs.rows.len())),
    }
}

fn highest(desc: bool) -> &'static str {
    if desc {
        "highest"
    } else {
        "lowest"
    }
}

/// How many rows at the end tie with the last one, when rows past the number asked for came back.
fn tied_at_the_cut(t: &AnswerTemplate, rs: &ResultSet) -> Option<usize> {
    let n = usize::try_from(t.limit?).ok()?;
    let column = t.ranked_column?;
    if rs.rows.len() <= n {
        return None;
    }
    let last = rs.rows.last()?.get(column)?;
    Some(rs.rows.iter().rev().take_while(|r| r.get(column) == Some(last)).count())
}

fn tie_note(tied: Option<usize>, shown: usize) -> String {
    match tied {
        Some(k) => format!(" ({k} tie for the last place, so {shown} are listed)"),
        None => String::new(),
    }
}

/// "A, B and C" ("and N more" past the ones named).
fn and_list(mut items: Vec<String>, total: usize) -> String {
    if total > items.len() {
        return named_list(items, total);
    }
    match items.pop() {
        Some(last) if !items.is_empty() => format!("{} and {last}", items.join(", ")),
        Some(last) => last,
        None => String::new(),
    }
}

/// "Found 3 restaurants: ...", "The top 2 restaurants by rating are: ..."; keys are never shown.
fn list_answer(t: &AnswerTemplate, rs: &ResultSet, where_: &str) -> String {
    let items: Vec<String> = rs
        .rows
        .iter()
        .take(MAX_NAMED)
        .map(|row| {
            // Keys are shown only when nothing else is (the question asked for them).
            let only_keys = row.len() <= t.identifiers.len();
            let mut shown =
                row.iter().enumerate().filter(|(i, _)| only_keys || !t.identifiers.contains(i)).map(|(_, v)| show(v));
            let first = shown.next().unwrap_or_default();
            let rest: Vec<String> = shown.collect();
            if rest.is_empty() {
                first
            } else {
                format!("{first} ({})", rest.join(", "))
            }
        })
        .collect();
    let total = if rs.truncated { format!("more than {}", rs.rows.len()) } else { rs.rows.len().to_string() };
    let tied = tied_at_the_cut(t, rs);
    match (&t.ranked_by, t.limit) {
        (Some((by, desc)), Some(1)) if tied.is_some() => {
            format!("{} tie for the {} {by}{where_}.", and_list(items, rs.rows.len()), highest(*desc))
        }
        (Some((by, desc)), Some(1)) => {
            format!("The one with the {} {by}{where_} is {}.", highest(*desc), items.join(", "))
        }
        (Some((by, desc)), Some(n)) => format!(
            "The {} {n} {} by {by}{where_} are: {}{}.",
            if *desc { "top" } else { "bottom" },
            t.subject,
            named_list(items, rs.rows.len()),
            tie_note(tied, rs.rows.len())
        ),
        _ => {
            let noun = if rs.rows.len() == 1 && !rs.truncated { singular(&t.subject) } else { t.subject.clone() };
            format!("Found {total} {noun}{where_}: {}.", named_list(items, rs.rows.len()))
        }
    }
}
