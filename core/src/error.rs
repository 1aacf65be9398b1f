//! The one error type of sqlchat. Each variant knows its SQLSTATE, message, detail and hint;
//! `Error::report` renders the four with every secret scrubbed from the whole text before it is
//! cut to length, and the extension raises that report in exactly one place.

pub mod hint;
pub mod scrub;

pub use scrub::Secrets;

use std::fmt;
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
    #[error("the model's reply held no SQL statement ({})", count(.model_calls, "model call"))]
    NoSql { reply: String, model_calls: u32 },
    #[error("the generated SQL failed after {tried}: {message}")]
    QueryFailed { sqlstate: String, message: String, sql: String, tried: Tried },
    #[error("the generated SQL was refused after {tried}: {reason}")]
    QueryRefused { sqlstate: String, kind: Refusal, reason: String, sql: String, tried: Tried },
    #[error("{message}")]
    Cancelled { message: String },
    #[error("the caller can read no table or view")]
    NoVisibleTables,
    #[error("{what} is not allowed for role {role}")]
    Privileged { what: String, role: String, hint: String },
    #[error("internal error: {detail}")]
    Internal { detail: String },
    #[error("{function} cannot run inside a statement that sqlchat runs")]
    Reentered { function: String },
    // --- operations (statistics, quotas) ---
    #[error("role {role} is over its quota of {limit}")]
    QuotaExceeded { role: String, limit: String, resets_at: String },
    #[error("{what} needs sqlchat in shared_preload_libraries")]
    NotPreloaded { what: String },
    // ---- background asks (submit, result, cancel_job) ----
    #[error("cannot {what} {place}")]
    JobReadOnly { what: &'static str, place: &'static str },
    #[error("job {job} does not exist or belongs to another role")]
    JobNotFound { job: i64 },
    #[error("job {job} was cancelled")]
    JobCancelled { job: i64 },
    #[error("job {job} ran longer than sqlchat.job_timeout ({limit_s} s)")]
    JobTimedOut { job: i64, limit_s: i64 },
    #[error("job {job} was interrupted twice: its worker stopped while it ran (server restart or crash, or pg_terminate_backend)")]
    JobInterrupted { job: i64 },
    #[error("role {role} that submitted job {job} no longer exists")]
    JobRoleGone { job: i64, role: String },
    #[error("job {job} cannot run: role {role} that submitted it is not permitted to log in")]
    JobLoginRefused { job: i64, role: String },
    #[error("job {job} cannot run: role {role} that submitted it has no CONNECT privilege on database {database}")]
    JobConnectRefused { job: i64, role: String, database: String },
    #[error("job {job} cannot run: role {login} that submitted it may no longer SET ROLE {role}")]
    JobSetRoleRefused { job: i64, login: String, role: String },
    #[error("role {role} has {limit} jobs queued, the most sqlchat.max_queued_jobs allows")]
    JobQueueFull { role: String, limit: i64 },
    // ---- teaching (teach, define, set_private, feedback) ----
    #[error("cannot {what} {place}")]
    TeachReadOnly { what: String, place: &'static str },
    #[error("{what} {id} does not exist{}", if *.own { " or is not yours" } else { "" })]
    TeachNotFound { what: &'static str, id: i64, own: bool },
    #[error("the SQL to teach {}: {message}", if .refusal.is_some() { "was refused" } else { "failed" })]
    TaughtSql { sqlstate: String, message: String, refusal: Option<Refusal> },
    #[error("{what} already holds {limit} entries, the most it may")]
    TeachingFull { what: &'static str, limit: i64 },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Why sqlchat refused a statement before running it; each kind has a hint of its own
/// (`hint::for_refusal`).
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

impl Refusal {
    /// Every kind, for documentation and tests.
    pub const ALL: [Refusal; 7] = [
        Refusal::Statement,
        Refusal::Function,
        Refusal::Relation,
        Refusal::ForeignCode,
        Refusal::RlsBypass,
        Refusal::Cost,
        Refusal::Malformed,
    ];

    /// The kind's name in docs/errors.md.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Statement => "statement",
            Refusal::Function => "function",
            Refusal::Relation => "relation",
            Refusal::ForeignCode => "foreign_code",
            Refusal::RlsBypass => "rls_bypass",
            Refusal::Cost => "cost",
            Refusal::Malformed => "malformed",
        }
    }
}

/// How far a question got before sqlchat gave up: attempts (replies asked of the model for SQL:
/// the first, one request for the SQL alone after a reply without any, and repairs;
/// `sqlchat.answer.attempts`), the most it would ask for (`sqlchat.max_attempts`), and model calls
/// made (`sqlchat.answer.llm_calls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tried {
    pub statements: u32,
    pub limit: u32,
    pub model_calls: u32,
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} and {}", count(&self.statements, "attempt"), count(&self.model_calls, "model call"))
    }
}

/// "1 statement", "2 statements".
fn count(n: &u32, noun: &str) -> String {
    if *n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Most characters of a text an error keeps: far more than any report shows, so that the text
/// is scrubbed whole before it is cut for display.
pub const MAX_KEPT_CHARS: usize = 64 * 1024;
/// Most characters of a report's message.
const MESSAGE_CHARS: usize = 1000;
/// Most characters of a gateway's or model's text shown in a detail.
const REPLY_CHARS: usize = 300;
/// Most characters of the SQL shown in a detail.
const SQL_CHARS: usize = 2000;

/// An error as PostgreSQL raises it, every text scrubbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: String,
}

impl Error {
    /// The SQLSTATE this error is raised with (docs/errors.md lists each).
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
            Error::Reentered { .. } => "42501",
            Error::JobReadOnly { .. } => "25006",
            Error::JobNotFound { .. } | Error::JobRoleGone { .. } => "42704",
            Error::JobCancelled { .. } | Error::JobTimedOut { .. } => "57014",
            Error::JobInterrupted { .. } => "57P01",
            Error::JobLoginRefused { .. } => "28000",
            Error::JobConnectRefused { .. } | Error::JobSetRoleRefused { .. } => "42501",
            Error::JobQueueFull { .. } => "53400",
            Error::TeachReadOnly { .. } => "25006",
            Error::TeachNotFound { .. } => "22023",
            Error::TaughtSql { sqlstate, .. } => sqlstate.as_str(),
            Error::TeachingFull { .. } => "54000",
        }
    }

    /// The message, detail and hint as shown, with `secrets` scrubbed from each whole text before
    /// it is cut to length.
    pub fn report(&self, secrets: &Secrets) -> Report {
        let shown = |text: &str, max: usize| excerpt(&secrets.scrub(text), max);
        Report {
            sqlstate: self.sqlstate().to_string(),
            message: shown(&format!("sqlchat: {self}"), MESSAGE_CHARS),
            detail: self.detail().map(|(label, text, max)| format!("{label}{}", shown(text, max))),
            hint: secrets.scrub(&self.hint()),
        }
    }

    /// The detail as a fixed label, a text that may hold secrets, and how much of it is shown.
    fn detail(&self) -> Option<(String, &str, usize)> {
        match self {
            Error::GatewayAuth { body, .. }
            | Error::GatewayRateLimited { body }
            | Error::GatewayStatus { body, .. }
                if !body.is_empty() =>
            {
                Some(("gateway said: ".into(), body, REPLY_CHARS))
            }
            Error::GatewayRedirect { location, .. } if !location.is_empty() => {
                Some(("Location: ".into(), location, REPLY_CHARS))
            }
            Error::NoSql { reply, .. } => Some(("the model replied: ".into(), reply, REPLY_CHARS)),
            Error::QueryFailed { sql, tried, .. } | Error::QueryRefused { sql, tried, .. } => {
                let why = if tried.statements >= tried.limit {
                    format!("sqlchat.max_attempts ({}) reached", tried.limit)
                } else {
                    "the model's repair gave no new statement".to_string()
                };
                Some((format!("Stopped: {why}. Last statement tried: "), sql, SQL_CHARS))
            }
            _ => None,
        }
    }

    /// What to do about it; every error has one.
    pub fn hint(&self) -> String {
        let h = match self {
            Error::NullQuestion | Error::EmptyQuestion => "Pass the question as text, e.g. SELECT sqlchat.ask('how many orders are there?').",
            Error::InvalidArgument { hint, .. } | Error::Privileged { hint, .. } => hint.as_str(),
            Error::NotConfigured => "Set sqlchat.api_base (and sqlchat.api_key or the SQLCHAT_API_KEY environment variable) in postgresql.conf or with ALTER SYSTEM, then SELECT pg_reload_conf(); or SET sqlchat.engine = 'offline'.",
            Error::SecretExposed { .. } => "Add sqlchat to shared_preload_libraries in postgresql.conf and restart the server, or move the key to sqlchat.api_key_file or the server's environment (SQLCHAT_API_KEY); consider the exposed key compromised.",
            Error::GatewayUnreachable { .. } => "Check sqlchat.api_base and that the gateway is running and reachable from the database server.",
            Error::GatewayConnectionLost { .. } => "The gateway closed the connection mid-reply; try again, and check the gateway's logs.",
            Error::GatewayTls { .. } => "The gateway's certificate must be valid for its host name and signed by a root the server trusts; for a private CA a superuser can set sqlchat.ca_file.",
            Error::GatewayTimeout { .. } => "Raise sqlchat.request_timeout_ms, or check the gateway's load.",
            Error::GatewayAuth { .. } => "Check sqlchat.api_key (or sqlchat.api_key_file, sqlchat.auth_header, SQLCHAT_API_KEY) in the server's configuration.",
            Error::GatewayRateLimited { .. } => "Wait and try again, or configure sqlchat.fallback_models.",
            Error::GatewayStatus { status: 404, .. } => "Check sqlchat.api_base (it should end before /chat/completions) and sqlchat.model.",
            Error::GatewayStatus { status: 400, .. } => "Check sqlchat.model and that the gateway speaks the OpenAI chat-completions API.",
            Error::GatewayStatus { status: 502..=504, .. } => "The gateway is overloaded or restarting and did not recover within the retries; try again later or configure sqlchat.fallback_models.",
            Error::GatewayStatus { .. } => "The gateway failed; try again or configure sqlchat.fallback_models.",
            Error::GatewayRedirect { .. } => "Set sqlchat.api_base to the gateway's final URL (redirects are never followed, so the key is never sent elsewhere).",
            Error::GatewayReplyTooLarge { .. } => "The gateway's reply exceeded the size limit; check sqlchat.model and the gateway.",
            Error::GatewayBadReply { .. } => "Check that sqlchat.api_base points at an OpenAI-compatible chat-completions API.",
            Error::NoSql { .. } => "Rephrase the question, or name the tables and columns it is about; check that sqlchat.model is a model that writes SQL.",
            Error::QueryFailed { sqlstate, tried, .. } => return hint::for_query_error(sqlstate, tried),
            Error::QueryRefused { kind, .. } => hint::for_refusal(*kind),
            Error::Cancelled { message } => hint::CancelCause::of(message).hint(),
            Error::NoVisibleTables => "GRANT SELECT on the tables the question is about, and USAGE on their schemas, to this role.",
            Error::Internal { .. } => "This is a bug in sqlchat; please report it with the question that caused it.",
            Error::QuotaExceeded { resets_at, .. } => {
                return format!("The quota resets at {resets_at}; a superuser can change it with sqlchat.set_quota().")
            }
            Error::Reentered { .. } => "Code that runs while sqlchat runs a statement (a domain's check, a policy, a type's or an operator's function the statement reaches) must not call sqlchat's functions.",
            Error::NotPreloaded { .. } => "Add sqlchat to shared_preload_libraries in postgresql.conf and restart the server.",
            Error::JobReadOnly { .. } => "Call sqlchat.ask or sqlchat.ask_full, which answer in read-only transactions and on standbys, or submit on the primary in a read-write transaction.",
            Error::JobNotFound { .. } => "sqlchat.jobs lists the jobs you can see; finished jobs are removed after sqlchat.job_retention.",
            Error::JobCancelled { .. } => "It was stopped with sqlchat.cancel_job; submit the question again for an answer.",
            Error::JobTimedOut { .. } => "Background jobs run at most sqlchat.job_timeout, so that none holds a worker for long: ask a narrower question, call sqlchat.ask_full directly, or have a superuser raise sqlchat.job_timeout.",
            Error::JobInterrupted { .. } => "Submit the question again. To stop a job, use sqlchat.cancel_job.",
            Error::JobRoleGone { .. } => "A job runs as the role that submitted it; that role was dropped or renamed before the job ran.",
            Error::JobLoginRefused { .. } | Error::JobConnectRefused { .. } | Error::JobSetRoleRefused { .. } => "A job runs only while its session user could still log in to the database and become the job's role; a superuser can restore the privilege and the question be submitted again.",
            Error::JobQueueFull { .. } => "Wait for queued jobs to run (sqlchat.jobs shows them) or cancel some with sqlchat.cancel_job; a superuser can raise sqlchat.max_queued_jobs.",
            Error::TeachReadOnly { .. } => "Teach, define, mark columns private and give feedback on the primary, in a read-write transaction; asks still use what is taught on standbys.",
            Error::TeachNotFound { what: "turn", .. } => "sqlchat.history(session_id) lists your turns with their ids; teachers see submitted feedback in sqlchat.feedback_queue.",
            Error::TeachNotFound { what: "definition", .. } => "sqlchat.definitions lists the definitions with their ids.",
            Error::TeachNotFound { .. } => "sqlchat.examples lists the examples with their ids.",
            Error::TaughtSql { refusal: Some(kind), .. } => hint::for_refusal(*kind),
            Error::TaughtSql { .. } => "Teach a statement that runs: it runs once, read-only, as you, before it is stored. Fix it and teach it again.",
            Error::TeachingFull { .. } => "Remove entries that are no longer needed (sqlchat.unteach, sqlchat.undefine) and try again.",
        };
        h.to_string()
    }

    /// Errors that end the whole request at once: never retried, never answered around.
    pub fn is_cancel(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }
}

/// The first `max` characters of `s` (at a char boundary), with an ellipsis when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}...", &s[..cut]),
    }
}

/// The part of a text an error keeps (`MAX_KEPT_CHARS`).
pub fn keep(s: &str) -> String {
    match s.char_indices().nth(MAX_KEPT_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => s[..cut].to_string(),
    }
}

#[cfg(test)]
mod tests;
