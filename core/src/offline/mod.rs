//! The offline engine: answers common questions without an LLM. (stub: being written)

use crate::catalog::Catalog;
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

#[derive(Debug, Clone, PartialEq)]
pub struct AnswerTemplate {
    pub kind: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Answer(OfflinePlan),
    Decline(String),
}

pub fn plan(_catalog: &Catalog, _question: &str, _probe: &mut dyn Probe) -> Decision {
    Decision::Decline("the offline engine is not built yet".into())
}

/// The answer in words and follow-up suggestions for a plan's rows.
pub fn render_answer(_plan: &OfflinePlan, result: &ResultSet) -> (String, Vec<String>) {
    (format!("{} row(s).", result.rows.len()), vec![])
}
