//! The offline engine: answers common questions without an LLM. It reads the question against the
//! catalog (tables, columns, values found in the data through small bounded lookups), plans one
//! read-only SELECT over one table, or a table and those it reaches along declared foreign keys,
//! for the shapes it knows (counts, aggregates overall or per group or time bucket, top/bottom N,
//! ratios of two counts, filtered lists), and words the answer from templates. It
//! answers only when every meaningful word of the question is accounted for, and declines
//! otherwise: a wrong answer is worse than none.

mod joins;
mod parse;
mod query;
mod render;
mod schema;

#[cfg(test)]
mod tests;

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
    /// The groups in words ("city", "month").
    pub groups: Vec<String>,
    /// The filters in words ("city is New York", "rating > 4").
    pub conditions: Vec<String>,
    /// What the rows are ranked by, in words, and whether highest first.
    pub ranked_by: Option<(String, bool)>,
    pub limit: Option<u64>,
    /// Follow-up questions the offline engine can answer too.
    pub suggestions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Answer(OfflinePlan),
    Decline(String),
}

pub fn plan(view: &View, question: &str, probe: &mut dyn Probe) -> Decision {
    let vocab = schema::Vocab::new(view);
    let catalog = view.catalog;
    match parse::parse(&vocab, question, probe) {
        Ok(parsed) => {
            let Some(tables) =
                parsed.query.tables().into_iter().map(|t| catalog.tables.get(t).map(|t| t.display_name())).collect()
            else {
                return Decision::Decline("internal: no table".into());
            };
            Decision::Answer(OfflinePlan {
                sql: parsed.query.to_sql(catalog),
                tables,
                template: render::template(catalog, &vocab, &parsed.query),
            })
        }
        Err(reason) => Decision::Decline(reason),
    }
}

/// The answer in words and follow-up suggestions for a plan's rows.
pub fn render_answer(plan: &OfflinePlan, result: &ResultSet) -> (String, Vec<String>) {
    (render::answer(&plan.template, result), plan.template.suggestions.clone())
}
