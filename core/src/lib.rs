//! sqlchat's core: everything that needs no PostgreSQL server. The extension crate supplies the
//! catalog, runs SQL and talks HTTP; this crate decides what to ask, what to run and what to say.

pub mod catalog;
pub mod chart;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod lang;
pub mod offline;
pub mod openai;
pub mod ops;
pub mod pipeline;
pub mod policy;
pub mod prompt;
pub mod rank;
pub mod result;
pub mod retry;
pub mod setup;
pub mod teach;

pub use catalog::{Catalog, Column, ForeignKey, Table, TableKind};
pub use error::{Error, Result};
pub use result::{ResultColumn, ResultSet};

/// Prompt size estimate used everywhere sqlchat reports or budgets tokens: characters / 4.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// Cache key of a generation request: a SHA-256 over the scope (model, role...) and the exact
/// messages sent, so any change in schema context, history or prompt wording misses.
pub fn cache_key(scope: &str, messages: &[openai::Message]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    for m in messages {
        h.update([0u8]);
        h.update(m.role.as_bytes());
        h.update([0u8]);
        h.update(m.content.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
