//! Hints for errors of the generated SQL (by SQLSTATE), for refusals (by kind) and for cancels (by
//! cause). docs/errors.md lists each of them word for word; a test keeps the two the same.

use super::{Refusal, Tried};

/// The hint of a failed generated statement whose SQLSTATE is `sqlstate` (or in its class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryHint {
    /// A full SQLSTATE, or a two-character class.
    pub sqlstate: &'static str,
    /// PostgreSQL's condition name (of the class, for a class).
    pub condition: &'static str,
    pub hint: &'static str,
    /// More repairs could help: the model can fix this kind of mistake when shown the error.
    pub repairable: bool,
}

const fn entry(sqlstate: &'static str, condition: &'static str, hint: &'static str, repairable: bool) -> QueryHint {
    QueryHint { sqlstate, condition, hint, repairable }
}

/// Looked up by full SQLSTATE first, then by class, then `OTHER_QUERY_ERROR`.
pub const QUERY_HINTS: &[QueryHint] = &[
    entry("42501", "insufficient_privilege", "This role lacks a privilege the query needs (on a table, column, schema or function): GRANT it, or ask about data this role can read.", false),
    entry("42P01", "undefined_table", "The model named a table that does not exist or that this role cannot see: name the tables the question is about.", true),
    entry("42703", "undefined_column", "The model named a column that does not exist: name the columns the question is about.", true),
    entry("42883", "undefined_function", "The model used a function or operator that does not exist for these types: say in the question which columns to compare or compute with.", true),
    entry("42601", "syntax_error", "The model wrote SQL that does not parse: rephrase the question, or try another sqlchat.model.", true),
    entry("42", "syntax_error_or_access_rule_violation", "The model wrote SQL that PostgreSQL rejects: rephrase the question, naming the tables and columns it is about.", true),
    entry("22012", "division_by_zero", "The query divided by zero: say in the question how to treat zero values (for example, leave out groups with no rows).", true),
    entry("22", "data_exception", "The query met a value it cannot handle (a malformed number or date, a value out of range): say in the question how to treat such values, or ask about fewer rows.", true),
    entry("21000", "cardinality_violation", "A subquery returned more than one row where one was expected: say more precisely which row the question is about.", true),
    entry("0A000", "feature_not_supported", "The model used something PostgreSQL does not support in that form: rephrase the question.", true),
    entry("25006", "read_only_sql_transaction", "The query tried to write, and sqlchat runs generated SQL read-only: ask a question that only reads data.", false),
    entry("53400", "configuration_limit_exceeded", "The query needed more temporary file space than allowed (sqlchat.temp_file_limit, or the server's temp_file_limit): ask a narrower question (a filter, a shorter period, fewer groups), or have a superuser raise sqlchat.temp_file_limit.", false),
    entry("53200", "out_of_memory", "The server ran out of memory for the query: ask a narrower question; a superuser can lower sqlchat.work_mem so that sorts and hashes spill to disk sooner.", false),
    entry("53100", "disk_full", "The server's disk is full: tell the database administrator.", false),
    entry("53", "insufficient_resources", "The server lacked the resources to run the query: try again later, or ask a narrower question.", false),
    entry("54", "program_limit_exceeded", "The query went past one of PostgreSQL's limits (too complex, nested too deep, too many columns or arguments): ask a simpler question.", false),
    entry("55P03", "lock_not_available", "The query waited longer than lock_timeout for a lock another session holds: try again later, or raise lock_timeout.", false),
    entry("40001", "serialization_failure", "The query conflicted with a concurrent transaction: ask again (in a REPEATABLE READ or SERIALIZABLE transaction, ROLLBACK and start a new one first).", false),
    entry("40P01", "deadlock_detected", "The query was cancelled to resolve a deadlock with another session: ask again.", false),
    entry("40", "transaction_rollback", "The query was rolled back by a conflict with another session: ask again.", false),
    entry("57", "operator_intervention", "The server interrupted the query (an administrator's command or a conflict with recovery on a standby): ask again.", false),
    entry("58", "system_error", "The server could not use a file or resource the query needs (the server log says which): tell the database administrator.", false),
    entry("P0", "plpgsql_error", "A function the query called raised this error: rephrase the question so that the query avoids it.", true),
    entry("XX", "internal_error", "PostgreSQL failed internally running the query (the server log has details): ask again, and tell the database administrator if it repeats.", false),
];

/// The hint of an SQLSTATE that no entry of `QUERY_HINTS` covers.
pub const OTHER_QUERY_ERROR: QueryHint = entry(
    "",
    "",
    "The generated SQL kept failing with this error: rephrase the question, naming the tables and columns it is about.",
    true,
);

/// Appended when more repairs could help and sqlchat stopped because of sqlchat.max_attempts.
pub fn more_attempts(limit: u32) -> String {
    format!(" Raising sqlchat.max_attempts (now {limit}) gives the model more repairs.")
}

/// The entry for `sqlstate`: its own, else its class's, else `OTHER_QUERY_ERROR`.
pub fn query_hint(sqlstate: &str) -> &'static QueryHint {
    let class = sqlstate.get(..2).unwrap_or("");
    QUERY_HINTS
        .iter()
        .find(|h| h.sqlstate == sqlstate)
        .or_else(|| QUERY_HINTS.iter().find(|h| h.sqlstate.len() == 2 && h.sqlstate == class))
        .unwrap_or(&OTHER_QUERY_ERROR)
}

/// The hint of a generated statement that still failed with `sqlstate` after `tried`.
pub fn for_query_error(sqlstate: &str, tried: &Tried) -> String {
    let entry = query_hint(sqlstate);
    let mut hint = entry.hint.to_string();
    if entry.repairable && tried.statements >= tried.limit {
        hint.push_str(&more_attempts(tried.limit));
    }
    hint
}

/// The hint of a refusal. An exhaustive match: a new kind of refusal does not compile until it
/// has a hint here (and docs/errors.md, checked by a test, lists it).
pub fn for_refusal(kind: Refusal) -> &'static str {
    match kind {
        Refusal::Statement => "sqlchat runs exactly one plain SELECT (no INSERT, UPDATE, DELETE, DDL, SELECT INTO, FOR UPDATE or several statements): ask a question that only reads data.",
        Refusal::Function => "The query called a function outside sqlchat's policy (PostgreSQL's immutable and stable functions and a few harmless volatile ones): a superuser can allow more in sqlchat.allowed_functions.",
        Refusal::Relation => "Generated SQL may not read sqlchat's own tables or catalogs that hold secrets: ask about your own tables.",
        Refusal::ForeignCode => "The query would run code another role owns (a domain's CHECK, a row-level security policy, a range type's support function) with this role's rights: ask about other tables or columns, or have the object owned by this role or a superuser.",
        Refusal::RlsBypass => "This role bypasses row-level security on a table the query reads (superuser, BYPASSRLS or the table's owner) and sqlchat.rls_bypass is refuse: ask as a role that row-level security applies to, or have a superuser set sqlchat.rls_bypass to warn or allow.",
        Refusal::Cost => "The query's estimated cost is above sqlchat.max_cost: ask a narrower question (a filter, a shorter period, fewer groups), or have a superuser raise sqlchat.max_cost.",
        Refusal::Malformed => "The model's text cannot be one statement (a zero byte, or nesting deeper than sqlchat checks): rephrase the question more simply.",
    }
}

/// Why a statement was cancelled (57014), told apart by PostgreSQL's message and sqlchat's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelCause {
    /// sqlchat's own deadline for a generated query.
    QueryTimeout,
    StatementTimeout,
    /// Ctrl-C, pg_cancel_backend, or anything else.
    Request,
}

impl CancelCause {
    pub fn of(message: &str) -> CancelCause {
        if message.contains("sqlchat.query_timeout_ms") {
            CancelCause::QueryTimeout
        } else if message.contains("statement timeout") {
            CancelCause::StatementTimeout
        } else {
            CancelCause::Request
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            CancelCause::QueryTimeout => "The generated query ran longer than sqlchat.query_timeout_ms: ask a narrower question, or raise the limit (SET sqlchat.query_timeout_ms = '2min'; 0 leaves only statement_timeout).",
            CancelCause::StatementTimeout => "statement_timeout ended the statement (a gateway call or the generated query): raise it (SET statement_timeout = '2min'), or ask a narrower question.",
            CancelCause::Request => "The statement was cancelled (Ctrl-C or pg_cancel_backend) and nothing of it was kept: ask again when ready.",
        }
    }
}
