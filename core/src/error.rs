//! The one error type of sqlchat. Each variant knows its SQLSTATE, message, detail and hint; the
//! extension turns it into a PostgreSQL ERROR in exactly one place. Secrets never enter these texts:
//! gateway bodies are scrubbed by `scrub` before they are stored here.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    #[error("question must not be NULL")]
    NullQuestion,
    #[error("question must not be empty")]
    EmptyQuestion,
    #[error("{what}")]
    InvalidArgument { what: String, hint: String },
    #[error("no LLM gateway is configured")]
    NotConfigured,
    #[error("{setting} is set, but the library is not in shared_preload_libraries, so any role can read it with SHOW")]
    SecretExposed { setting: String },
    #[error("could not reach the LLM gateway: {detail}")]
    GatewayUnreachable { detail: String },
    #[error("the connection to the LLM gateway was lost: {detail}")]
    GatewayConnectionLost { detail: String },
    #[error("TLS with the LLM gateway failed: {detail}")]
    GatewayTls { detail: String },
    #[error("the LLM gateway did not answer within {timeout_ms} ms")]
    GatewayTimeout { timeout_ms: u64 },
    #[error("the LLM gateway refused the API key (HTTP {status})")]
    GatewayAuth { status: u16, body: String },
    #[error("the LLM gateway is rate limiting requests (HTTP 429)")]
    GatewayRateLimited { body: String },
    #[error("the LLM gateway answered HTTP {status}")]
    GatewayStatus { status: u16, body: String },
    #[error("the LLM gateway answered with a redirect (HTTP {status}), which sqlchat does not follow")]
    GatewayRedirect { status: u16, location: String },
    #[error("the LLM gateway's reply was larger than {limit} bytes")]
    GatewayReplyTooLarge { limit: usize },
    #[error("the LLM gateway's reply could not be used: {detail}")]
    GatewayBadReply { detail: String },
    #[error("the model did not return SQL")]
    NoSql { reply_excerpt: String },
    #[error("the generated SQL failed after {attempts} attempt(s): {message}")]
    QueryFailed { sqlstate: String, message: String, sql: String, attempts: u32 },
    #[error("the generated SQL was refused after {attempts} attempt(s): {reason}")]
    QueryRefused { sqlstate: String, kind: Refusal, reason: String, sql: String, attempts: u32 },
    #[error("{message}")]
    Cancelled { message: String },
    #[error("the caller can read no table or view")]
    NoVisibleTables,
    #[error("{what} is not allowed for role {role}")]
    Privileged { what: String, role: String, hint: String },
    #[error("internal error: {detail}")]
    Internal { detail: String },
    // --- operations (statistics, quotas) ---
    #[error("role {role} is over its quota of {limit}")]
    QuotaExceeded { role: String, limit: String, resets_at: String },
    #[error("{what} needs sqlchat in shared_preload_libraries")]
    NotPreloaded { what: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Why sqlchat refused a statement before running it; each kind has a hint of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not exactly one plain SELECT: DML, DDL, utility, several statements, SELECT INTO, FOR
    /// UPDATE/SHARE, a data-modifying WITH, a rule that expands into several statements.
    Statement,
    /// Calls a function (directly, or through an operator, cast, aggregate or view) outside the policy.
    Function,
    /// Reads a relation generated SQL may never read (sqlchat's own tables, catalogs holding secrets).
    Relation,
    /// Would run code that a role without the caller's privileges wrote (a domain's CHECK, a
    /// row-level security policy, a range type's support function) with the caller's rights.
    ForeignCode,
    /// The caller bypasses row-level security on a table it reads and `sqlchat.rls_bypass` is refuse.
    RlsBypass,
    /// The planner's cost estimate is above `sqlchat.max_cost`.
    Cost,
    /// The text cannot be a statement at all (a zero byte, nesting deeper than sqlchat walks).
    Malformed,
}

impl Error {
    /// The SQLSTATE this error is raised with (documented in the README's error table).
    pub fn sqlstate(&self) -> &str {
        match self {
            Error::NullQuestion => "22004",
            Error::EmptyQuestion | Error::InvalidArgument { .. } => "22023",
            Error::NotConfigured => "55000",
            Error::SecretExposed { .. } => "55000",
            Error::GatewayUnreachable { .. } => "08001",
            Error::GatewayConnectionLost { .. } => "08006",
            Error::GatewayTls { .. } => "08001",
            Error::GatewayTimeout { .. } => "08000",
            Error::GatewayAuth { .. } => "28000",
            Error::GatewayRateLimited { .. } => "53400",
            Error::GatewayStatus { .. } => "58000",
            Error::GatewayRedirect { .. } => "58000",
            Error::GatewayReplyTooLarge { .. } => "54000",
            Error::GatewayBadReply { .. } => "58000",
            Error::NoSql { .. } => "22000",
            Error::QueryFailed { sqlstate, .. } => sqlstate.as_str(),
            Error::QueryRefused { sqlstate, .. } => sqlstate.as_str(),
            Error::Cancelled { .. } => "57014",
            Error::NoVisibleTables => "42501",
            Error::Privileged { .. } => "42501",
            Error::Internal { .. } => "XX000",
            Error::QuotaExceeded { .. } => "53400",
            Error::NotPreloaded { .. } => "55000",
        }
    }

    pub fn message(&self) -> String {
        format!("sqlchat: {self}")
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Error::GatewayAuth { body, .. }
            | Error::GatewayRateLimited { body }
            | Error::GatewayStatus { body, .. }
                if !body.is_empty() =>
            {
                Some(format!("gateway said: {}", excerpt(body, 300)))
            }
            Error::GatewayRedirect { location, .. } if !location.is_empty() => {
                Some(format!("Location: {}", excerpt(location, 300)))
            }
            Error::NoSql { reply_excerpt } => Some(format!("the model replied: {}", excerpt(reply_excerpt, 300))),
            Error::QueryFailed { sql, .. } | Error::QueryRefused { sql, .. } => {
                Some(format!("last SQL tried: {}", excerpt(sql, 2000)))
            }
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let h = match self {
            Error::NullQuestion | Error::EmptyQuestion => "Pass the question as text, e.g. SELECT sqlchat.ask('how many orders are there?').",
            Error::InvalidArgument { hint, .. } | Error::Privileged { hint, .. } => return Some(hint.clone()),
            Error::NotConfigured => "Set sqlchat.api_base (and sqlchat.api_key or the SQLCHAT_API_KEY environment variable) in postgresql.conf or with ALTER SYSTEM, then SELECT pg_reload_conf(); or SET sqlchat.engine = 'offline'.",
            Error::SecretExposed { .. } => "Add sqlchat to shared_preload_libraries in postgresql.conf and restart the server, or move the key to sqlchat.api_key_file or the server's environment (SQLCHAT_API_KEY); consider the exposed key compromised.",
            Error::GatewayUnreachable { .. } => "Check sqlchat.api_base and that the gateway is running and reachable from the database server.",
            Error::GatewayConnectionLost { .. } => "The gateway closed the connection mid-reply; try again, and check the gateway's logs.",
            Error::GatewayTls { .. } => "The gateway's certificate must be valid for its host name and signed by a root the server trusts; for a private CA a superuser can set sqlchat.ca_file.",
            Error::GatewayTimeout { .. } => "Raise sqlchat.request_timeout_ms, or check the gateway's load.",
            Error::GatewayAuth { .. } => "Check sqlchat.api_key (or sqlchat.auth_header) in the server's configuration.",
            Error::GatewayRateLimited { .. } => "Wait and try again, or configure sqlchat.fallback_models.",
            Error::GatewayStatus { status, .. } if *status == 404 => "Check sqlchat.api_base (it should end before /chat/completions) and sqlchat.model.",
            Error::GatewayStatus { status, .. } if *status == 400 => "Check sqlchat.model and that the gateway speaks the OpenAI chat-completions API.",
            Error::GatewayRedirect { .. } => "Set sqlchat.api_base to the gateway's final URL (redirects are never followed, so the key is never sent elsewhere).",
            Error::GatewayStatus { status, .. } if (502..=504).contains(status) => "The gateway is overloaded or restarting and did not recover within the retries; try again later or configure sqlchat.fallback_models.",
            Error::GatewayStatus { .. } => "The gateway failed; try again or configure sqlchat.fallback_models.",
            Error::GatewayReplyTooLarge { .. } => "The gateway's reply exceeded the size limit; check sqlchat.model and the gateway.",
            Error::GatewayBadReply { .. } => "Check that sqlchat.api_base points at an OpenAI-compatible chat-completions API.",
            Error::NoSql { .. } => "Rephrase the question, or name the tables and columns it is about.",
            Error::QueryFailed { .. } => "Rephrase the question, name the tables and columns it is about, or raise sqlchat.max_attempts.",
            Error::QueryRefused { kind: Refusal::Cost, .. } => "The query's estimated cost is above sqlchat.max_cost: ask a narrower question, or have a superuser raise the limit.",
            Error::QueryRefused { .. } => "sqlchat runs only one read-only SELECT that calls allowed functions; a superuser can allow more in sqlchat.allowed_functions.",
            Error::Cancelled { .. } => return None,
            Error::NoVisibleTables => "GRANT SELECT on the tables the question is about, and USAGE on their schemas, to this role.",
            Error::Internal { .. } => "This is a bug in sqlchat; please report it with the question that caused it.",
            Error::QuotaExceeded { resets_at, .. } => {
                return Some(format!(
                    "The quota resets at {resets_at}; a superuser can change it with sqlchat.set_quota()."
                ))
            }
            Error::NotPreloaded { .. } => "Add sqlchat to shared_preload_libraries in postgresql.conf and restart the server.",
        };
        Some(h.to_string())
    }

    /// Errors that end the whole request at once: never retried, never answered around.
    pub fn is_cancel(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }
}

/// The first `max` characters of `s` (at a char boundary), with an ellipsis when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}...")
}

/// Removes secrets from a text that may be shown to users: each of `secrets` (and, for a bearer
/// key, its longest prefix-free form) is replaced, and anything that looks like a bearer token or
/// an OpenAI-style key is masked.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        let s = s.trim();
        if s.len() >= 4 {
            out = out.replace(s, "[redacted]");
            if let Some(tok) = s.strip_prefix("Bearer ") {
                if tok.len() >= 4 {
                    out = out.replace(tok, "[redacted]");
                }
            }
        }
    }
    mask_key_like(&out)
}

fn mask_key_like(text: &str) -> String {
    // sk-..., Bearer ...: mask the token that follows.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["sk-", "Bearer "].iter().filter_map(|p| rest.find(p).map(|i| (i, *p))).min_by_key(|(i, _)| *i);
        match next {
            None => {
                out.push_str(rest);
                return out;
            }
            Some((i, p)) => {
                out.push_str(&rest[..i + p.len()]);
                let after = &rest[i + p.len()..];
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                    .unwrap_or(after.len());
                if end >= 8 {
                    out.push_str("[redacted]");
                } else {
                    out.push_str(&after[..end]);
                }
                rest = &after[end..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_five_char_sqlstate_and_a_hint_or_is_a_cancel() {
        let all = vec![
            Error::NullQuestion,
            Error::EmptyQuestion,
            Error::NotConfigured,
            Error::GatewayUnreachable { detail: "x".into() },
            Error::GatewayTimeout { timeout_ms: 1 },
            Error::GatewayAuth { status: 401, body: "".into() },
            Error::GatewayStatus { status: 500, body: "".into() },
            Error::NoSql { reply_excerpt: "".into() },
            Error::QueryFailed { sqlstate: "42703".into(), message: "m".into(), sql: "s".into(), attempts: 3 },
            Error::Cancelled { message: "canceling statement due to user request".into() },
        ];
        for e in all {
            assert_eq!(e.sqlstate().len(), 5, "{e:?}");
            assert!(e.hint().is_some() || e.is_cancel());
            assert!(e.message().starts_with("sqlchat: "));
        }
    }

    #[test]
    fn scrub_removes_keys() {
        let s = scrub("auth failed for key sk-abcdefghijklmnop and mykey12345", &["mykey12345"]);
        assert!(!s.contains("abcdefghijklmnop"));
        assert!(!s.contains("mykey12345"));
        assert_eq!(scrub("Authorization: Bearer abc.def.ghi.jkl", &[]), "Authorization: Bearer [redacted]");
        assert_eq!(scrub("plain text", &[]), "plain text");
    }
}
