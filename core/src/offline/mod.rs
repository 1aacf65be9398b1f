//! The offline engine: answers common questions without an LLM. It reads the question against the
//! catalog (tables, columns, values found in the data through small bounded lookups), plans one
//! read-only SELECT over one table, or a table and those it reaches along declared foreign keys,
//! for the shapes it knows (counts, aggregates overall or per group or time bucket, top/bottom N,
//! ratios of two counts, filtered lists), and words the answer from templates. It
//! answers only when every meaningful word of the question is accounted for, and declines
//! otherwise: a wrong answer is worse than none.

mod build;
mod follow;
mod joins;
mod measures;
pub(crate) mod query;
mod read;
mod render;
mod schema;

#[cfg(test)]
mod tests;

pub use follow::{follow_up, is_follow_up, plan_follow_up, Earlier};

use crate::lang::View;
use crate::result::ResultSet;

/// Runs small bounded read-only queries for the planner (value lookups); supplied by the host.
pub trait Probe {
    fn query(&mut self, sql: &str) -> Result<ResultSet, String>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct OfflinePlan {
    pub sql: String,
    /// Tables the SQL reads, `schema.name`.
    pub tables: Vec<String>,
    /// What the answer template needs (the shape of the question and its parts).
    pub template: AnswerTemplate,
}

/// The shape of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// One count of rows.
    Count,
    /// One row of aggregates (average, total, distinct count...).
    Aggregate,
    /// A measure per group or time bucket.
    Grouped,
    /// Rows listed.
    List,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnswerTemplate {
    pub kind: AnswerKind,
    /// The rows' noun, plural ("restaurants").
    pub subject: String,
    /// The measures in words, in column order after the groups ("average rating").
    pub measures: Vec<String>,
    /// The groups in words ("city", "month"; empty for a detail of a joined table's rows).
    pub groups: Vec<String>,
    /// The time unit of each group that is a time bucket (its values are shown as `2024`, `2024-03`).
    pub group_units: Vec<Option<crate::lang::words::TimeUnit>>,
    /// The filters in words ("city is New York", "rating > 4").
    pub conditions: Vec<String>,
    /// What the rows are ranked by, in words, and whether highest first.
    pub ranked_by: Option<(String, bool)>,
    /// The result column holding what the rows are ranked by.
    pub ranked_column: Option<usize>,
    /// How many rows were asked for; more come back when rows tie with the last one.
    pub limit: Option<u64>,
    /// Result columns that identify rows (keys): in the SQL to keep rows apart, never in the words.
    pub identifiers: Vec<usize>,
    /// Follow-up questions the offline engine can answer too.
    pub suggestions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Answer(Box<OfflinePlan>),
    Decline(Decline),
}

/// Why the offline engine does not answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decline {
    /// The question is empty.
    Empty,
    /// No word of the question names a table, a column or anything else in the database.
    NotAboutData,
    /// A word of the question that nothing in the database accounts for.
    Unknown(String),
    /// The question can be read in several ways (tables, columns, join paths, values).
    Ambiguous(String),
    /// A construct the offline engine does not build, in words.
    Unsupported(String),
}

impl std::fmt::Display for Decline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decline::Empty => write!(f, "the question is empty"),
            Decline::NotAboutData => write!(f, "nothing in the question names a table, a column or a value here"),
            Decline::Unknown(word) => write!(f, "I don't know what \"{word}\" refers to in this database"),
            Decline::Ambiguous(why) | Decline::Unsupported(why) => write!(f, "{why}"),
        }
    }
}

impl From<&str> for Decline {
    fn from(why: &str) -> Self {
        Decline::Unsupported(why.to_string())
    }
}

impl From<String> for Decline {
    fn from(why: String) -> Self {
        Decline::Unsupported(why)
    }
}

pub(crate) struct Parsed {
    pub query: query::Query,
}

pub fn plan(view: &View, question: &str, probe: &mut dyn Probe) -> Decision {
    let vocab = schema::Vocab::new(view);
    let catalog = view.catalog;
    match read::parse(&vocab, question, probe) {
        Ok(parsed) => {
            let Some(tables) =
                parsed.query.tables().into_iter().map(|t| catalog.tables.get(t).map(|t| t.display_name())).collect()
            else {
                return Decision::Decline("no table".into());
            };
            Decision::Answer(Box::new(OfflinePlan {
                sql: parsed.query.to_sql(catalog),
                tables,
                template: render::template(catalog, &vocab, &parsed.query),
            }))
        }
        Err(reason) => Decision::Decline(reason),
    }
}

/// The answer in words and follow-up suggestions for a plan's rows.
pub fn render_answer(plan: &OfflinePlan, result: &ResultSet) -> (String, Vec<String>) {
    (render::answer(&plan.template, result), plan.template.suggestions.clone())
}
