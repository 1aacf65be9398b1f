//! The interaction log (`sqlchat.log`): the row one ask leaves, as a backend hands it to the
//! background worker (a JSON object in the shared ring) and as the worker inserts a batch of them
//! (one JSON array read by `jsonb_to_recordset`).

use super::record::{AskRecord, Step};
use super::ring::Pending;
use serde::Serialize;
use std::time::Duration;

/// The columns the worker fills, with the SQL type each JSON key is read as, in the order of
/// `LogRow`'s fields. `asked_at_us` becomes the `asked_at` column.
pub const COLUMNS: [(&str, &str); 21] = [
    ("asked_at_us", "bigint"),
    ("role_oid", "oid"),
    ("role_name", "name"),
    ("session_id", "text"),
    ("question", "text"),
    ("sql", "text"),
    ("engine", "text"),
    ("verified", "boolean"),
    ("from_cache", "boolean"),
    ("attempts", "integer"),
    ("llm_calls", "integer"),
    ("prompt_tokens", "bigint"),
    ("completion_tokens", "bigint"),
    ("tokens_estimated", "boolean"),
    ("gateway_ms", "double precision"),
    ("sql_ms", "double precision"),
    ("total_ms", "double precision"),
    ("steps", "jsonb"),
    ("sqlstate", "text"),
    ("message", "text"),
    ("backend_pid", "integer"),
];

/// Who asked, where and when: what the record itself does not say.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Microseconds since 1970-01-01 UTC when the ask began.
    pub asked_at_us: i64,
    pub role_oid: u32,
    pub role_name: &'a str,
    pub backend_pid: i32,
}

/// One row of `sqlchat.log`.
#[derive(Debug, Serialize)]
pub struct LogRow<'a> {
    asked_at_us: i64,
    role_oid: u32,
    role_name: &'a str,
    session_id: Option<&'a str>,
    question: Option<&'a str>,
    sql: Option<&'a str>,
    engine: Option<&'a str>,
    verified: bool,
    from_cache: bool,
    attempts: u32,
    llm_calls: u32,
    prompt_tokens: u64,
    completion_tokens: u64,
    tokens_estimated: bool,
    gateway_ms: f64,
    sql_ms: f64,
    total_ms: f64,
    steps: &'a [Step],
    sqlstate: Option<&'a str>,
    message: Option<&'a str>,
    backend_pid: i32,
}

impl<'a> LogRow<'a> {
    /// The row of a record that went through `redact`.
    pub fn new(origin: Origin<'a>, r: &'a AskRecord) -> LogRow<'a> {
        LogRow {
            asked_at_us: origin.asked_at_us,
            role_oid: origin.role_oid,
            role_name: origin.role_name,
            session_id: r.session.as_deref(),
            question: r.question.as_deref(),
            sql: r.sql.as_deref(),
            engine: r.engine.as_deref(),
            verified: r.verified,
            from_cache: r.from_cache,
            attempts: r.attempts,
            llm_calls: r.llm_calls,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            tokens_estimated: r.tokens_estimated,
            gateway_ms: round_ms(r.gateway_ms),
            sql_ms: round_ms(r.sql_ms),
            total_ms: round_ms(r.total_ms),
            steps: &r.steps,
            sqlstate: r.sqlstate.as_deref(),
            message: r.message.as_deref(),
            backend_pid: origin.backend_pid,
        }
    }

    /// The JSON object handed to the worker.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// Passes every text a record keeps from the ask (session, question, SQL, message) through
/// `mask`, and removes NUL characters, which a PostgreSQL text cannot hold (a gateway's reply
/// quoted in a message may have them). Role names and step names are sqlchat's own.
pub fn redact(r: &mut AskRecord, mask: impl Fn(&str) -> String) {
    for text in [&mut r.session, &mut r.question, &mut r.sql, &mut r.message].into_iter().flatten() {
        *text = mask(text).replace('\0', "");
    }
}

/// The JSON array of a batch of rows (each as `LogRow::to_json` wrote it).
pub fn batch(rows: &[Vec<u8>]) -> String {
    let mut out = String::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&String::from_utf8_lossy(row));
    }
    out.push(']');
    out
}

/// The column definition list of `jsonb_to_recordset` for `COLUMNS`.
pub fn recordset_columns() -> String {
    COLUMNS.iter().map(|(name, ty)| format!("{name} {ty}")).collect::<Vec<_>>().join(", ")
}

/// Rows are gathered into batches, as PostgreSQL's WAL writer gathers its writes: the worker
/// writes once the oldest waiting row is this old, or once this many bytes wait, whichever
/// comes first. One insert per ask would cost more than the ask's own work at a high rate.
pub const GATHER_MS: u64 = 200;
pub const GATHER_BYTES: u64 = 64 * 1024;

/// In how long a database's waiting rows are to be written, at `now` (microseconds, on the
/// ring's clock): zero when they are ready.
pub fn write_in(pending: Pending, now_us: i64) -> Duration {
    let age_us = now_us.saturating_sub(pending.oldest_at).max(0) as u64;
    if pending.bytes >= GATHER_BYTES || age_us >= GATHER_MS * 1000 {
        return Duration::ZERO;
    }
    Duration::from_micros(GATHER_MS * 1000 - age_us)
}

/// A batch this late was not written when it should have been (its worker was busy with a long
/// job, or stopped): every row handed over then wakes the worker again.
pub const OVERDUE_MS: u64 = 10 * GATHER_MS;

/// Whether handing over a row of `added` bytes at `now_us`, which brought its database's
/// waiting rows to `pending`, should wake the worker: the first row starts a batch (the worker
/// then sleeps until it is ready), a batch that grows past `GATHER_BYTES` is ready at once, and
/// an overdue one is asked for again. Other rows wake no one.
pub fn wakes_worker(pending: Pending, added: u64, now_us: i64) -> bool {
    let overdue = now_us.saturating_sub(pending.oldest_at) >= (OVERDUE_MS * 1000) as i64;
    pending.bytes <= added || (pending.bytes >= GATHER_BYTES && pending.bytes - added < GATHER_BYTES) || overdue
}

/// How long a ready record of a database whose worker never came may wait before the worker of
/// another database looks at why (that database may be gone, or its wake-up lost).
pub const STALE_AFTER_S: i64 = 60;

fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin { asked_at_us: 1_700_000_000_123_456, role_oid: 16_390, role_name: "ann", backend_pid: 4242 }
    }

    #[test]
    fn a_rows_keys_are_the_columns_in_order() {
        let r = AskRecord::default();
        let json: serde_json::Value = serde_json::from_slice(&LogRow::new(origin(), &r).to_json()).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut columns: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        columns.sort_unstable();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, columns);
        assert!(recordset_columns().starts_with("asked_at_us bigint, role_oid oid, role_name name"));
    }

    #[test]
    fn a_row_carries_the_record_and_its_origin() {
        let mut r = AskRecord {
            session: Some("s1".into()),
            question: Some("how many?".into()),
            engine: Some("llm".into()),
            attempts: 2,
            llm_calls: 3,
            prompt_tokens: 120,
            gateway_ms: 12.345_678,
            ..Default::default()
        };
        r.push_step("llm:generate_sql", 5.0);
        r.set_error("42703", "column \"x\" does not exist");
        let v: serde_json::Value = serde_json::from_slice(&LogRow::new(origin(), &r).to_json()).unwrap();
        assert_eq!(v["asked_at_us"], 1_700_000_000_123_456i64);
        assert_eq!(v["role_name"], "ann");
        assert_eq!(v["session_id"], "s1");
        assert_eq!(v["question"], "how many?");
        assert_eq!(v["sql"], serde_json::Value::Null);
        assert_eq!(v["llm_calls"], 3);
        assert_eq!(v["gateway_ms"], 12.346);
        assert_eq!(v["steps"][0]["step"], "llm:generate_sql");
        assert_eq!(v["sqlstate"], "42703");
        assert_eq!(v["backend_pid"], 4242);
    }

    #[test]
    fn redact_masks_every_text_of_the_ask_and_drops_nul() {
        let mut r = AskRecord {
            role: "ann".into(),
            session: Some("KEY".into()),
            question: Some("is KEY there?".into()),
            sql: Some("SELECT 'KEY'".into()),
            message: Some("bad reply: KEY\0".into()),
            ..Default::default()
        };
        redact(&mut r, |t| t.replace("KEY", "[redacted]"));
        assert_eq!(r.session.as_deref(), Some("[redacted]"));
        assert_eq!(r.question.as_deref(), Some("is [redacted] there?"));
        assert_eq!(r.sql.as_deref(), Some("SELECT '[redacted]'"));
        assert_eq!(r.message.as_deref(), Some("bad reply: [redacted]"));
        assert_eq!(r.role, "ann");
    }

    #[test]
    fn rows_are_written_once_the_oldest_is_old_enough_or_enough_of_them_wait() {
        let young = Pending { oldest_at: 1_000_000, bytes: 500 };
        assert_eq!(write_in(young, 1_000_000), Duration::from_millis(GATHER_MS));
        assert_eq!(write_in(young, 1_050_000), Duration::from_millis(GATHER_MS - 50));
        assert_eq!(write_in(young, 1_000_000 + GATHER_MS as i64 * 1000), Duration::ZERO);
        assert_eq!(write_in(Pending { bytes: GATHER_BYTES, ..young }, 1_000_000), Duration::ZERO);
        assert_eq!(write_in(young, 0), Duration::from_millis(GATHER_MS), "a clock that went back waits no longer");
    }

    #[test]
    fn the_first_row_of_a_batch_a_full_batch_and_an_overdue_one_wake_the_worker() {
        let at = |bytes| Pending { oldest_at: 0, bytes };
        assert!(wakes_worker(at(300), 300, 0));
        assert!(!wakes_worker(at(600), 300, 0));
        assert!(wakes_worker(at(GATHER_BYTES + 100), 300, 0));
        assert!(!wakes_worker(at(GATHER_BYTES + 400), 300, 0));
        assert!(!wakes_worker(at(600), 300, OVERDUE_MS as i64 * 1000 - 1));
        assert!(wakes_worker(at(600), 300, OVERDUE_MS as i64 * 1000), "an overdue batch is asked for again");
    }

    #[test]
    fn a_batch_is_one_json_array() {
        let r = AskRecord::default();
        let one = LogRow::new(origin(), &r).to_json();
        let text = batch(&[one.clone(), one]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(batch(&[]), "[]");
    }
}
