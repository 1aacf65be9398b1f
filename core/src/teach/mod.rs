//! Teaching sqlchat the business: verified examples (questions with the SQL that answers them),
//! definitions and standing instructions, the stored spelling of values, and private columns.
//! The extension stores them and loads what is taught; this module decides which of it a caller
//! may use, what goes into a question's prompt, and when a taught question is asked again.
//!
//! Everything taught is text that reaches everyone's prompts: it is capped in length and count
//! here, sent only inside data blocks, and an example is used for a caller only when the caller
//! may read every table and column its statement reads (as PostgreSQL's analysis of the statement
//! reported them when it was taught).

pub mod definitions;
pub mod examples;
pub mod question;
pub mod suggest;
pub mod values;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// Limits of what may be taught (characters, except the SQL's bytes, and counts).
pub const MAX_QUESTION_CHARS: usize = 1000;
pub const MAX_SQL_BYTES: usize = 20_000;
pub const MAX_NOTE_CHARS: usize = 1000;
pub const MAX_TERM_CHARS: usize = 100;
pub const MAX_MEANING_CHARS: usize = 1000;
pub const MAX_CORRECTION_CHARS: usize = 2000;
pub const MAX_EXAMPLES: i64 = 2000;
pub const MAX_DEFINITIONS: i64 = 500;

/// A relation a taught statement reads and the columns of it read (every column for a
/// whole-row reference), as PostgreSQL's analysis of the statement reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: i64,
    pub question: String,
    pub sql: String,
    pub note: Option<String>,
    pub reads: Vec<Read>,
}

impl Example {
    /// `schema.table` of each relation the statement reads.
    pub fn tables(&self) -> impl Iterator<Item = String> + '_ {
        self.reads.iter().map(|r| format!("{}.{}", r.schema, r.table))
    }
}

/// A definition of a term, or (no term) a standing instruction sent with every question.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub id: i64,
    pub term: Option<String>,
    pub meaning: String,
}

/// What is taught, as loaded for a question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Teaching {
    pub examples: Vec<Example>,
    pub definitions: Vec<Definition>,
    /// (schema, table, column) of every private column.
    pub private: Vec<(String, String, String)>,
    /// What matching needs of the examples and definitions, computed once: a host that keeps a
    /// `Teaching` across questions does not stem every example again for each.
    prepared: OnceLock<Prepared>,
}

/// The examples' question keys and weighted words, and the definitions' terms as stems.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Prepared {
    pub keys: Vec<String>,
    pub docs: Vec<examples::Doc>,
    pub terms: Vec<Vec<String>>,
}

/// Nothing taught.
pub static NOTHING_TAUGHT: Teaching =
    Teaching { examples: Vec::new(), definitions: Vec::new(), private: Vec::new(), prepared: OnceLock::new() };

impl Teaching {
    pub fn new(examples: Vec<Example>, definitions: Vec<Definition>, private: Vec<(String, String, String)>) -> Self {
        Teaching { examples, definitions, private, prepared: OnceLock::new() }
    }

    pub(crate) fn prepared(&self) -> &Prepared {
        self.prepared.get_or_init(|| Prepared {
            keys: self.examples.iter().map(|e| question::key(&e.question)).collect(),
            docs: self.examples.iter().map(examples::doc).collect(),
            terms: self
                .definitions
                .iter()
                .map(|d| d.term.as_deref().map(question::stem_sequence).unwrap_or_default())
                .collect(),
        })
    }

    /// The examples a caller whose privilege-filtered catalog is `catalog` may use: every
    /// relation and column their statements read is in it.
    pub fn usable(&self, catalog: &Catalog) -> Vec<usize> {
        let tables: HashMap<(&str, &str), &crate::catalog::Table> =
            catalog.tables.iter().map(|t| ((t.schema.as_str(), t.name.as_str()), t)).collect();
        let readable = |r: &Read| {
            tables
                .get(&(r.schema.as_str(), r.table.as_str()))
                .is_some_and(|t| r.columns.iter().all(|c| t.column(c).is_some()))
        };
        (0..self.examples.len()).filter(|&i| self.examples[i].reads.iter().all(readable)).collect()
    }

    /// Whether column `column` of the caller's table `table` is private.
    pub fn is_private(&self, catalog: &Catalog, table: usize, column: usize) -> bool {
        let t = &catalog.tables[table];
        let name = &t.columns[column].name;
        self.private.iter().any(|(s, tn, c)| *s == t.schema && *tn == t.name && c == name)
    }

    /// The usable example asked again: the same question key (`question::key`).
    pub fn verified(&self, usable: &[usize], question: &str) -> Option<usize> {
        let key = question::key(question);
        let keys = &self.prepared().keys;
        usable.iter().copied().filter(|&i| keys[i] == key).min_by_key(|&i| self.examples[i].id)
    }
}

/// An example as the prompt shows it.
pub fn render_example(e: &Example) -> String {
    let mut text = format!("Question: {}\n", one_line(&e.question));
    if let Some(note) = e.note.as_deref().map(one_line).filter(|n| !n.is_empty()) {
        text.push_str(&format!("Note: {note}\n"));
    }
    text.push_str(&format!("SQL: {}", e.sql.trim().trim_end_matches(';').trim()));
    text
}

/// A definition as the prompt shows it.
pub fn render_definition(d: &Definition) -> String {
    match d.term.as_deref() {
        Some(term) => format!("{}: {}", one_line(term), one_line(&d.meaning)),
        None => format!("Always: {}", one_line(&d.meaning)),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn too_long(what: &str, chars: usize, max: usize) -> Error {
    Error::InvalidArgument {
        what: format!("{what} is {chars} characters long; the limit is {max}"),
        hint: format!("Shorten the {what}: everything taught is sent in prompts."),
    }
}

fn required(what: &str, text: Option<&str>) -> Result<String> {
    match text.map(str::trim) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(Error::InvalidArgument {
            what: format!("{what} must not be NULL or empty"),
            hint: format!("Pass the {what} as text."),
        }),
    }
}

/// The question, SQL and note of an example to teach, trimmed, or why they cannot be taught.
pub fn check_example(
    question: Option<&str>,
    sql: Option<&str>,
    note: Option<&str>,
) -> Result<(String, String, Option<String>)> {
    let question = required("question", question)?;
    let sql = required("sql", sql)?;
    let note = note.map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
    let chars = question.chars().count();
    if chars > MAX_QUESTION_CHARS {
        return Err(too_long("question", chars, MAX_QUESTION_CHARS));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(Error::InvalidArgument {
            what: format!("sql is {} bytes long; the limit is {MAX_SQL_BYTES}", sql.len()),
            hint: "Teach a shorter statement: examples are sent in prompts.".into(),
        });
    }
    if let Some(n) = &note {
        let chars = n.chars().count();
        if chars > MAX_NOTE_CHARS {
            return Err(too_long("note", chars, MAX_NOTE_CHARS));
        }
    }
    if question::key(&question) == "|" {
        return Err(Error::InvalidArgument {
            what: "the question has no words".into(),
            hint: "Teach a question in words, e.g. 'How many orders were placed last month?'.".into(),
        });
    }
    Ok((question, sql, note))
}

/// The term (None: a standing instruction) and meaning of a definition, trimmed, or why they
/// cannot be stored.
pub fn check_definition(term: Option<&str>, meaning: Option<&str>) -> Result<(Option<String>, String)> {
    let meaning = required("meaning", meaning)?;
    let chars = meaning.chars().count();
    if chars > MAX_MEANING_CHARS {
        return Err(too_long("meaning", chars, MAX_MEANING_CHARS));
    }
    let term = match term {
        None => None,
        Some(t) => {
            let t = required("term", Some(t))?;
            let chars = t.chars().count();
            if chars > MAX_TERM_CHARS {
                return Err(too_long("term", chars, MAX_TERM_CHARS));
            }
            if question::stem_sequence(&t).is_empty() {
                return Err(Error::InvalidArgument {
                    what: format!("the term '{t}' has no word a question could use"),
                    hint: "Define a term with at least one word that is not a stop word, or pass NULL for a standing instruction.".into(),
                });
            }
            Some(t)
        }
    };
    Ok((term, meaning))
}

/// A correction given with feedback, trimmed and checked.
pub fn check_correction(correction: Option<&str>) -> Result<Option<String>> {
    let Some(c) = correction.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(None) };
    let chars = c.chars().count();
    if chars > MAX_CORRECTION_CHARS {
        return Err(too_long("correction", chars, MAX_CORRECTION_CHARS));
    }
    Ok(Some(c.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};

    fn example(reads: &[(&str, &[&str])]) -> Example {
        Example {
            id: 1,
            question: "q".into(),
            sql: "SELECT 1".into(),
            note: None,
            reads: reads
                .iter()
                .map(|(t, cols)| Read {
                    schema: "public".into(),
                    table: t.to_string(),
                    columns: cols.iter().map(|c| c.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn an_example_is_usable_only_when_everything_it_reads_is_readable() {
        let catalog = Catalog { tables: vec![Table::new("public", "people", vec![Column::new("name", "text", 'S')])] };
        let teaching = Teaching::new(
            vec![
                example(&[("people", &["name"])]),
                example(&[("people", &["name", "salary"])]),
                example(&[("people", &[]), ("salaries", &["amount"])]),
                example(&[]),
            ],
            vec![],
            vec![],
        );
        assert_eq!(teaching.usable(&catalog), [0, 3]);
    }

    #[test]
    fn verified_matches_need_the_same_key() {
        let mut e = example(&[]);
        e.question = "Top 5 customers by revenue?".into();
        let teaching = Teaching::new(vec![e], vec![], vec![]);
        assert_eq!(teaching.verified(&[0], "top 5 customers BY revenue"), Some(0));
        assert_eq!(teaching.verified(&[0], "top 10 customers by revenue"), None);
        assert_eq!(teaching.verified(&[], "top 5 customers by revenue"), None);
    }

    #[test]
    fn teaching_text_is_capped() {
        assert!(check_example(Some("q"), Some("SELECT 1"), None).is_ok());
        assert!(check_example(Some(&"q".repeat(1001)), Some("SELECT 1"), None).is_err());
        assert!(check_example(Some("q"), Some(&"x".repeat(20_001)), None).is_err());
        assert!(check_example(Some("?!"), Some("SELECT 1"), None).is_err());
        assert!(check_example(None, Some("SELECT 1"), None).is_err());
        assert_eq!(check_definition(None, Some(" Amounts are in EUR ")).unwrap(), (None, "Amounts are in EUR".into()));
        assert!(check_definition(Some("the"), Some("x")).is_err());
        assert!(check_definition(Some("churn"), Some(&"x".repeat(1001))).is_err());
        assert_eq!(check_definition(Some("churn"), Some("x")).unwrap().0.as_deref(), Some("churn"));
        let e = check_definition(Some(""), Some("x")).unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
    }

    #[test]
    fn rendering_is_one_line_per_part() {
        let mut e = example(&[]);
        e.question = "How many\norders?".into();
        e.note = Some("counts all\n statuses".into());
        e.sql = "SELECT count(*) FROM orders;".into();
        assert_eq!(
            render_example(&e),
            "Question: How many orders?\nNote: counts all statuses\nSQL: SELECT count(*) FROM orders"
        );
        let d = Definition { id: 1, term: None, meaning: "Use\nEUR".into() };
        assert_eq!(render_definition(&d), "Always: Use EUR");
    }
}
