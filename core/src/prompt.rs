//! Prompts sent to the model and parsing of its answer replies. (stub: being written)

use crate::openai::Message;
use crate::result::ResultSet;

/// One earlier turn of a conversation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub question: String,
    pub sql: Option<String>,
    pub answer: Option<String>,
}

pub fn generate_sql_messages(question: &str, schema: &str, history: &[Turn], summary: Option<&str>) -> Vec<Message> {
    let _ = (history, summary);
    vec![Message::system("Write one PostgreSQL SELECT."), Message::user(format!("{schema}\n\n{question}"))]
}

pub fn repair_messages(question: &str, schema: &str, history: &[Turn], summary: Option<&str>, failed_sql: &str, error: &str) -> Vec<Message> {
    let _ = (history, summary);
    vec![Message::system("Fix the SQL."), Message::user(format!("{schema}\n\n{question}\n{failed_sql}\n{error}"))]
}

pub fn answer_messages(question: &str, sql: &str, rows_sample: Option<(&str, usize)>, total_rows: usize, truncated: bool) -> Vec<Message> {
    let _ = (rows_sample, total_rows, truncated);
    vec![Message::system("Answer."), Message::user(format!("{question}\n{sql}"))]
}

pub fn summarize_messages(previous_summary: Option<&str>, turns: &[Turn]) -> Vec<Message> {
    let _ = (previous_summary, turns);
    vec![Message::user("Summarize.")]
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnswerReply {
    pub answer: String,
    pub followups: Vec<String>,
}

pub fn parse_answer_reply(reply: &str) -> Option<AnswerReply> {
    let r = reply.trim();
    if r.is_empty() { None } else { Some(AnswerReply { answer: r.to_string(), followups: vec![] }) }
}

pub fn template_answer(question: &str, result: &ResultSet) -> String {
    let _ = question;
    format!("The query returned {} row(s).", result.rows.len())
}
