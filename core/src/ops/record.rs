//! The record of one ask as operators see it: what the slow log prints and the interaction log
//! keeps. Texts in it are bounded; the question can be kept, left out or replaced by its hash.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Longest question or SQL kept in a record (characters); longer ones are cut with an ellipsis.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest error message kept.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Session ids longer than sqlchat accepts are refused, but the record of the refused ask keeps one too.
pub const MAX_SESSION_CHARS: usize = 200;
/// Most steps listed; an ask makes a handful (more only with many repairs).
pub const MAX_STEPS: usize = 32;

/// `sqlchat.log_questions`: keep the question's text, leave it out, or keep a hash that still
/// shows repeated questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionText {
    On,
    Off,
    Hash,
}

impl QuestionText {
    /// The question as a record keeps it.
    pub fn apply(self, question: &str) -> Option<String> {
        match self {
            QuestionText::On => Some(crate::error::excerpt(question, MAX_TEXT_CHARS)),
            QuestionText::Off => None,
            QuestionText::Hash => Some(question_hash(question)),
        }
    }

    /// A text of the ask that may quote the question (the SQL, an error message), as a record
    /// keeps it: whole when the question is kept, else without the values written into it (the
    /// SQL's literals and comments; of a message, only the condition's name).
    pub fn apply_to_sql(self, sql: &str) -> String {
        match self {
            QuestionText::On => sql.to_string(),
            QuestionText::Off | QuestionText::Hash => crate::lang::sql::without_literals(sql),
        }
    }

    pub fn apply_to_message(self, sqlstate: &str, message: &str) -> String {
        match self {
            QuestionText::On => message.to_string(),
            QuestionText::Off | QuestionText::Hash => {
                format!(
                    "{} (the message is not kept: it may quote the question)",
                    crate::result::condition_name(sqlstate)
                )
            }
        }
    }
}

/// `sha256:` and the hex SHA-256 of the trimmed question.
pub fn question_hash(question: &str) -> String {
    let digest = Sha256::digest(question.trim().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One timed step of an ask: `catalog`, `llm:<purpose>`, `sql`...
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub step: String,
    pub ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AskRecord {
    pub role: String,
    pub session: Option<String>,
    pub question: Option<String>,
    pub sql: Option<String>,
    pub engine: Option<String>,
    pub verified: bool,
    pub from_cache: bool,
    pub attempts: u32,
    /// Requests sent to the gateway (retries included).
    pub llm_calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Some of the tokens were estimated (a reply without `usage`).
    pub tokens_estimated: bool,
    pub gateway_ms: f64,
    pub sql_ms: f64,
    pub total_ms: f64,
    pub steps: Vec<Step>,
    pub sqlstate: Option<String>,
    pub message: Option<String>,
}

impl AskRecord {
    /// Adds a step, up to `MAX_STEPS`; later ones fold into the last.
    pub fn push_step(&mut self, step: &str, ms: f64) {
        if self.steps.len() < MAX_STEPS {
            self.steps.push(Step { step: step.to_string(), ms: round_ms(ms) });
        } else if let Some(last) = self.steps.last_mut() {
            last.step = "more".into();
            last.ms = round_ms(last.ms + ms);
        }
    }

    pub fn set_sql(&mut self, sql: Option<&str>) {
        self.sql = sql.map(|s| crate::error::excerpt(s, MAX_TEXT_CHARS));
    }

    pub fn set_error(&mut self, sqlstate: &str, message: &str) {
        self.sqlstate = Some(sqlstate.to_string());
        self.message = Some(crate::error::excerpt(message, MAX_MESSAGE_CHARS));
    }

    /// The slow log's line: one JSON object, no line break inside.
    pub fn slow_log_line(&self) -> String {
        let mut rounded = self.clone();
        rounded.gateway_ms = round_ms(self.gateway_ms);
        rounded.sql_ms = round_ms(self.sql_ms);
        rounded.total_ms = round_ms(self.total_ms);
        serde_json::to_string(&rounded).unwrap_or_else(|_| "{}".into())
    }
}

fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_question_the_sql_and_message_lose_its_values() {
        let sql = "SELECT count(*) FROM customers WHERE name = 'Jane Roe'";
        assert_eq!(QuestionText::On.apply_to_sql(sql), sql);
        assert_eq!(QuestionText::Off.apply_to_sql(sql), "SELECT count(*) FROM customers WHERE name = ?");
        let message = r#"invalid input syntax for type date: "Jane's birthday 1970""#;
        assert_eq!(
            QuestionText::Hash.apply_to_message("22007", message),
            "data_exception (the message is not kept: it may quote the question)"
        );
    }

    #[test]
    fn questions_are_kept_left_out_or_hashed() {
        assert_eq!(QuestionText::On.apply("how many?").as_deref(), Some("how many?"));
        assert_eq!(QuestionText::Off.apply("how many?"), None);
        let h = QuestionText::Hash.apply("how many?").unwrap();
        assert!(h.starts_with("sha256:") && h.len() == 71, "{h}");
        assert!(!h.contains("many"));
        assert_eq!(question_hash(" how many? "), h, "the same question hashes the same");
        assert_ne!(question_hash("how many!"), h);
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        assert_eq!(QuestionText::On.apply(&long).unwrap().chars().count(), MAX_TEXT_CHARS + 3);
    }

    #[test]
    fn the_slow_log_line_is_one_json_object() {
        let mut r = AskRecord { role: "ann".into(), question: Some("line one\nline two".into()), ..Default::default() };
        r.push_step("llm:generate_sql", 812.12345);
        r.set_error("42703", "column \"x\" does not exist");
        r.total_ms = 1000.0004;
        let line = r.slow_log_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["steps"][0]["step"], "llm:generate_sql");
        assert_eq!(v["steps"][0]["ms"], 812.123);
        assert_eq!(v["sqlstate"], "42703");
        assert_eq!(v["total_ms"], 1000.0);
    }

    #[test]
    fn steps_are_bounded() {
        let mut r = AskRecord::default();
        for _ in 0..100 {
            r.push_step("sql", 1.0);
        }
        assert_eq!(r.steps.len(), MAX_STEPS);
        assert_eq!(r.steps.last().unwrap().step, "more");
        assert_eq!(r.steps.iter().map(|s| s.ms).sum::<f64>(), 100.0);
    }
}
