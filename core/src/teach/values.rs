//! Value vocabulary: when a question names a stored value in another spelling (case, accents, a
//! plural, the first words of a longer value, the value among other words), the prompt carries
//! the stored spelling beside its column. Values come from what PostgreSQL already keeps
//! (`pg_stats`' most common values and histogram bounds, privilege-filtered; enum labels), and a
//! bounded scan only of small lookup tables and tables never analysed; both run as the caller, in
//! the sandbox. Only
//! readable, non-private columns of the tables in the schema context are looked at, and the hints'
//! share of the prompt is capped.

use std::collections::{HashMap, HashSet};

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::catalog::quote_ident;
use crate::lang::text::each_identifier_word;
use crate::lang::words::{is_free_text_word, is_non_content};
use crate::lang::{stem, View};
use crate::offline::query::literal;
use crate::result::ResultSet;

/// Most columns looked up for one question.
pub const MAX_COLUMNS: usize = 24;
/// Columns of never-analysed tables scanned for one question, rows read and values kept per column.
pub const MAX_SCAN_COLUMNS: usize = 12;
pub const SCAN_ROWS: usize = 2000;
pub const SCAN_VALUES: usize = 100;
/// Values longer than this (characters) are free text, not vocabulary.
const MAX_VALUE_CHARS: usize = 80;
/// Words of a value compared at most.
const MAX_VALUE_WORDS: usize = 8;
/// What one prompt carries at most: columns with hints, and values per column.
pub const MAX_HINT_COLUMNS: usize = 8;
pub const MAX_VALUES_PER_COLUMN: usize = 3;
/// A question word alone matching the first word of a longer value must be this long.
const MIN_PREFIX_WORD_CHARS: usize = 4;

/// A column of the caller's catalog (positions) whose values may be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueColumn {
    pub table: usize,
    pub column: usize,
}

/// The stored spellings a question names, beside their column.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub column: ValueColumn,
    pub values: Vec<String>,
}

/// Text and enum columns of `tables` worth looking up: not free text, not private, at most
/// `MAX_COLUMNS`, in table then column order.
pub fn candidate_columns(view: &View, tables: &[usize], private: &dyn Fn(usize, usize) -> bool) -> Vec<ValueColumn> {
    let mut out = Vec::new();
    for &t in tables {
        for (c, col) in view.catalog.tables[t].columns.iter().enumerate() {
            let free_text = view.column_words(t, c).iter().any(|w| is_free_text_word(w));
            if col.is_text() && !free_text && !private(t, c) {
                out.push(ValueColumn { table: t, column: c });
            }
        }
    }
    out.truncate(MAX_COLUMNS);
    out
}

/// The query reading the statistics of `columns` (a row per column with statistics: its index,
/// most common values, histogram bounds). pg_stats shows only columns the caller may read.
pub fn statistics_sql(view: &View, columns: &[ValueColumn]) -> String {
    let rows: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = &view.catalog.tables[c.table];
            format!("({i}, {}, {}, {})", literal(&t.schema), literal(&t.name), literal(&t.columns[c.column].name))
        })
        .collect();
    format!(
        "SELECT v.i, s.most_common_vals::text::text[] AS common, s.histogram_bounds::text::text[] AS bounds \
         FROM (VALUES {}) AS v(i, sch, tab, col) \
         JOIN pg_catalog.pg_stats s ON s.schemaname = v.sch AND s.tablename = v.tab AND s.attname = v.col",
        rows.join(", ")
    )
}

/// The bounded scan of columns of small tables or tables without statistics: at most `SCAN_ROWS`
/// rows read and `SCAN_VALUES` distinct values kept per column.
pub fn scan_sql(view: &View, columns: &[(usize, ValueColumn)]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|(i, c)| {
            let t = &view.catalog.tables[c.table];
            let col = quote_ident(&t.columns[c.column].name);
            format!(
                "(SELECT {i} AS i, v FROM (SELECT DISTINCT x::text AS v FROM (SELECT {col} AS x FROM {} LIMIT {SCAN_ROWS}) s \
                 WHERE x IS NOT NULL LIMIT {SCAN_VALUES}) d)",
                t.qualified_name()
            )
        })
        .collect();
    parts.join(" UNION ALL ")
}

/// Values per column index from the rows of `statistics_sql` or `scan_sql`.
pub fn read_rows(rs: &ResultSet, into: &mut HashMap<usize, Vec<String>>) {
    for row in &rs.rows {
        let Some(i) = row.first().and_then(|v| v.as_u64()).map(|i| i as usize) else { continue };
        let values = into.entry(i).or_default();
        for cell in &row[1..] {
            match cell {
                serde_json::Value::String(s) => values.push(s.clone()),
                serde_json::Value::Array(items) => {
                    values.extend(items.iter().filter_map(|v| v.as_str().map(str::to_string)))
                }
                _ => {}
            }
        }
    }
}

/// Lowercase, without accents.
fn fold(text: &str) -> String {
    text.nfd().filter(|c| !is_combining_mark(*c)).collect::<String>().to_lowercase()
}

/// One word of the question as matched.
struct QWord {
    stem: String,
    chars: usize,
    content: bool,
}

fn words_of(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    each_identifier_word(&fold(text), |w| out.push((w.to_string(), stem(w))));
    out
}

/// How a question's words meet one value: the span of question words and whether it is the whole
/// value (else the value's first words).
struct Found {
    words: usize,
    whole: bool,
}

/// The stored values the question names, per column: whole values found among the question's
/// words (case, accents and plurals aside), and longer values whose first words the question
/// has. A match must hold a content word; a match of one word counts only when that word names no
/// table or column of the schema context and is not short. Bounded by `MAX_HINT_COLUMNS` columns
/// and `MAX_VALUES_PER_COLUMN` values each.
pub fn hints(view: &View, question: &str, tables: &[usize], values: &[(ValueColumn, Vec<String>)]) -> Vec<Hint> {
    let qwords: Vec<QWord> = words_of(question)
        .into_iter()
        .map(|(raw, stem)| QWord {
            content: !is_non_content(&raw) && !raw.chars().all(|c| c.is_numeric()),
            chars: raw.chars().count(),
            stem,
        })
        .collect();
    let mut at: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, w) in qwords.iter().enumerate() {
        at.entry(w.stem.as_str()).or_default().push(i);
    }
    let schema_words = schema_stems(view, tables);
    let mut found: Vec<(ValueColumn, usize, bool, String)> = Vec::new();
    for (column, stored) in values {
        let mut seen: HashSet<&str> = HashSet::new();
        for value in stored {
            if value.chars().count() > MAX_VALUE_CHARS || !seen.insert(value.as_str()) {
                continue;
            }
            let vstems: Vec<String> = words_of(value).into_iter().map(|(_, s)| s).collect();
            if vstems.is_empty() || vstems.len() > MAX_VALUE_WORDS {
                continue;
            }
            if let Some(f) = best_match(&qwords, &at, &vstems, &schema_words) {
                found.push((*column, f.words, f.whole, value.clone()));
            }
        }
    }
    // Longer matches first, whole values before first words, then the catalog's order.
    found.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    let mut out: Vec<Hint> = Vec::new();
    for (column, _, _, value) in found {
        match out.iter().position(|h| h.column == column) {
            Some(i) if out[i].values.len() < MAX_VALUES_PER_COLUMN => out[i].values.push(value),
            Some(_) => {}
            None if out.len() < MAX_HINT_COLUMNS => out.push(Hint { column, values: vec![value] }),
            None => {}
        }
    }
    out
}

fn best_match(
    qwords: &[QWord],
    at: &HashMap<&str, Vec<usize>>,
    vstems: &[String],
    schema: &HashSet<String>,
) -> Option<Found> {
    let mut best: Option<Found> = None;
    for &start in at.get(vstems[0].as_str()).map(Vec::as_slice).unwrap_or(&[]) {
        let k = vstems.iter().zip(&qwords[start..]).take_while(|(v, q)| **v == q.stem).count();
        let span = &qwords[start..start + k];
        if !span.iter().any(|w| w.content) {
            continue;
        }
        let whole = k == vstems.len();
        let single = k == 1;
        let distinctive = !schema.contains(&span[0].stem);
        let accepted = if whole {
            !single || (distinctive && span[0].chars >= 3)
        } else {
            !single || (distinctive && span[0].content && span[0].chars >= MIN_PREFIX_WORD_CHARS)
        };
        if accepted && best.as_ref().is_none_or(|b| (k, whole) > (b.words, b.whole)) {
            best = Some(Found { words: k, whole });
        }
    }
    best
}

/// Stems of the words naming the tables of the schema context and their columns.
fn schema_stems(view: &View, tables: &[usize]) -> HashSet<String> {
    let mut out = HashSet::new();
    for &t in tables {
        out.extend(view.table_words(t).iter().map(|w| stem(w)));
        for (c, _) in view.columns(t) {
            out.extend(view.column_words(t, c).iter().map(|w| stem(w)));
        }
    }
    out
}

/// `-- shop.customers.city values include 'New York City'`: one line per hint, each value on one
/// line, quoted as a SQL literal.
pub fn render(view: &View, hints: &[Hint]) -> String {
    hints
        .iter()
        .map(|h| {
            let t = &view.catalog.tables[h.column.table];
            let values: Vec<String> = h.values.iter().map(|v| literal(&one_line(v))).collect();
            format!(
                "-- {}.{} values include {}",
                t.qualified_name(),
                quote_ident(&t.columns[h.column.column].name),
                values.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Column, Table};

    fn catalog() -> Catalog {
        Catalog {
            tables: vec![Table::new(
                "shop",
                "customers",
                vec![
                    Column::new("id", "int", 'N'),
                    Column::new("city", "text", 'S'),
                    Column::new("segment", "text", 'S'),
                    Column::new("notes", "text", 'S'),
                ],
            )],
        }
    }

    fn found(question: &str, city: &[&str], segment: &[&str]) -> Vec<(String, Vec<String>)> {
        let c = catalog();
        let view = View::new(&c, None);
        let values = vec![
            (ValueColumn { table: 0, column: 1 }, city.iter().map(|s| s.to_string()).collect()),
            (ValueColumn { table: 0, column: 2 }, segment.iter().map(|s| s.to_string()).collect()),
        ];
        hints(&view, question, &[0], &values)
            .into_iter()
            .map(|h| (c.tables[0].columns[h.column.column].name.clone(), h.values))
            .collect()
    }

    const CITIES: &[&str] = &["New York City", "São Paulo", "Zürich", "Oslo", "Newark"];
    const SEGMENTS: &[&str] = &["Small Business", "Enterprise", "Consumer"];

    #[test]
    fn other_spellings_find_the_stored_one() {
        let city = |q: &str| found(q, CITIES, SEGMENTS);
        assert_eq!(city("customers in sao paulo"), [("city".to_string(), vec!["São Paulo".to_string()])]);
        assert_eq!(city("customers in ZURICH"), [("city".to_string(), vec!["Zürich".to_string()])]);
        assert_eq!(city("customers from new york"), [("city".to_string(), vec!["New York City".to_string()])]);
        assert_eq!(city("how many enterprises are there"), [("segment".to_string(), vec!["Enterprise".to_string()])]);
        assert_eq!(
            city("revenue of small businesses in oslo last year"),
            [
                ("segment".to_string(), vec!["Small Business".to_string()]),
                ("city".to_string(), vec!["Oslo".to_string()])
            ]
        );
    }

    #[test]
    fn questions_naming_no_value_get_no_hint() {
        for q in ["how many new customers per city", "top 5 customers by revenue", "average order value per segment"] {
            assert!(found(q, CITIES, SEGMENTS).is_empty(), "{q}");
        }
    }

    #[test]
    fn lookups_are_bounded_and_skip_private_and_free_text_columns() {
        let c = catalog();
        let view = View::new(&c, None);
        let cols = candidate_columns(&view, &[0], &|_, c| c == 2);
        assert_eq!(cols, [ValueColumn { table: 0, column: 1 }]);
        let sql = statistics_sql(&view, &cols);
        assert!(sql.contains("pg_catalog.pg_stats") && sql.contains("'city'"), "{sql}");
        let scan = scan_sql(&view, &[(0, cols[0])]);
        assert!(scan.contains("LIMIT 2000") && scan.contains("LIMIT 100"), "{scan}");
    }

    #[test]
    fn hints_render_as_one_line_each() {
        let c = catalog();
        let view = View::new(&c, None);
        let h = [Hint { column: ValueColumn { table: 0, column: 1 }, values: vec!["O'Hare\nx".into()] }];
        assert_eq!(render(&view, &h), "-- shop.customers.city values include 'O''Hare x'");
    }
}
