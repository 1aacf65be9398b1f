//! SQL extraction from what models write. (stub: being written)

#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    /// One SQL statement, without trailing semicolon.
    Sql(String),
    /// The model said the question cannot be answered from the schema; the text is its reason.
    Refusal(String),
    /// Neither SQL nor a recognisable refusal.
    Empty,
}

pub fn extract_sql(reply: &str) -> Extracted {
    let t = reply.trim().trim_end_matches(';').trim();
    if t.is_empty() { Extracted::Empty } else { Extracted::Sql(t.to_string()) }
}
