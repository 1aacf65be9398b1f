//! Runs one generated statement: validated by PostgreSQL's own parser and analyzer (guard.rs),
//! as the caller, read-only, inside a subtransaction that is always rolled back, as a
//! security-restricted operation (no temporary objects, LISTEN, cursors WITH HOLD or role changes),
//! with code other roles wrote kept in check from parsing to execution (trust.rs), row and byte
//! caps and a deadline of its own. Errors stay inside the subtransaction and come back as
//! `ExecFailure`.

mod guard;
pub use guard::Read;
mod timeout;
pub mod trust;

use crate::gucs;
use crate::subxact::{self, OnSuccess};
use pgrx::pg_sys;
use sqlchat_core::error::Refusal;
use sqlchat_core::pipeline::ExecFailure;
use sqlchat_core::policy;
use sqlchat_core::result::{json_value, ResultColumn, ResultSet};
use std::ffi::{CStr, CString};

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rows: usize,
    /// Bytes of result values (as text) read at most; later rows are cut off.
    pub max_bytes: usize,
    /// 0: none of sqlchat's own (statement_timeout still applies).
    pub timeout_ms: u64,
}

impl Limits {
    pub fn from_settings() -> Self {
        Limits { max_rows: gucs::max_rows(), max_bytes: gucs::max_result_bytes(), timeout_ms: gucs::query_timeout_ms() }
    }
}

/// Longest statement parsed: a query is never this long, and parsing is not interruptible.
const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// Validates and runs `sql`; the caller's transaction is left exactly as it was.
pub fn run_readonly(sql: &str, limits: Limits) -> Result<ResultSet, ExecFailure> {
    run_traced(sql, limits, &mut Trace::default())
}

/// What PostgreSQL's analysis of a statement that passed the guard says it reads (empty when it
/// did not get that far).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub reads: Vec<Read>,
    /// The statement passed every check and was opened to run: an ERROR from here on may quote
    /// values of the rows it read.
    pub running: bool,
}

/// `run_readonly`, filling `trace` with what the statement reads.
pub fn run_traced(sql: &str, limits: Limits, trace: &mut Trace) -> Result<ResultSet, ExecFailure> {
    let refused = |kind, message: String, sqlstate: &str| ExecFailure {
        sqlstate: sqlstate.into(),
        message,
        refusal: Some(kind),
        ..Default::default()
    };
    if sql.len() > MAX_STATEMENT_BYTES {
        let message = format!(
            "the statement is {} bytes long; sqlchat runs statements of up to {MAX_STATEMENT_BYTES} bytes",
            sql.len()
        );
        return Err(refused(Refusal::Malformed, message, "54000"));
    }
    let c_sql = CString::new(sql)
        .map_err(|_| refused(Refusal::Malformed, "the statement contains a zero byte".into(), "22021"))?;
    let scope = trust::Scope::begin(gucs::allowed_functions());
    let deadline = timeout::Deadline::arm(limits.timeout_ms);
    let result = subxact::run(OnSuccess::Rollback, || unsafe { run_in_sandbox(&c_sql, limits, &scope, trace) });
    let timed_out = deadline.disarm();
    let hook_refusal = scope.refusal();
    drop(scope);
    match result {
        Ok(inner) => {
            if timed_out && inner.is_ok() {
                // The deadline fired after the query had finished: its cancel request must not
                // end the rest of the call.
                unsafe { pg_sys::QueryCancelPending = 0 };
            }
            inner
        }
        Err(f) if timed_out && f.is_cancel() => Err(ExecFailure {
            sqlstate: "57014".into(),
            message: format!("the generated query ran longer than sqlchat.query_timeout_ms ({} ms)", limits.timeout_ms),
            ..Default::default()
        }),
        Err(f) => match hook_refusal {
            Some((kind, reason)) if !f.is_cancel() => Err(refused(kind, reason, "42501")),
            _ => Err(ExecFailure {
                sqlstate: f.sqlstate,
                message: f.message,
                while_running: trace.running,
                ..Default::default()
            }),
        },
    }
}

/// Sets a setting for the current subtransaction only (undone by its rollback).
unsafe fn set_local(name: &CStr, value: &str) {
    let value = CString::new(value).unwrap_or_default();
    pg_sys::set_config_option(
        name.as_ptr(),
        value.as_ptr(),
        pg_sys::GucContext::PGC_SUSET,
        pg_sys::GucSource::PGC_S_SESSION,
        pg_sys::GucAction::GUC_ACTION_LOCAL,
        true,
        0,
        false,
    );
}

unsafe fn current_setting(name: &CStr) -> String {
    let value = pg_sys::GetConfigOptionByName(name.as_ptr(), std::ptr::null_mut(), false);
    if value.is_null() {
        String::new()
    } else {
        CStr::from_ptr(value).to_string_lossy().into_owned()
    }
}

/// ISO output for dates and times, so that rows read the same whatever the caller's DateStyle;
/// the caller's field order (used to read ambiguous literals in the query) is kept.
unsafe fn iso_datestyle() -> String {
    let current = current_setting(c"DateStyle");
    let order = current.split(',').nth(1).map(str::trim).filter(|o| !o.is_empty()).unwrap_or("MDY");
    format!("ISO, {order}")
}

/// The caller's search_path with pg_catalog first and pg_temp last: neither temporary objects nor
/// the caller's own functions and operators can shadow real tables or PostgreSQL's built-ins.
unsafe fn pinned_search_path() -> String {
    let current = current_setting(c"search_path");
    let mut parts: Vec<&str> = vec!["pg_catalog"];
    parts.extend(
        current
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("pg_temp") && !p.eq_ignore_ascii_case("pg_catalog")),
    );
    parts.push("pg_temp");
    parts.join(", ")
}

unsafe fn run_in_sandbox(
    sql: &CStr,
    limits: Limits,
    scope: &trust::Scope,
    trace: &mut Trace,
) -> Result<ResultSet, ExecFailure> {
    set_local(c"transaction_read_only", "on");
    set_local(c"search_path", &pinned_search_path());
    set_local(c"DateStyle", &iso_datestyle());
    // Backslashes in string literals are data, whatever the caller's setting.
    set_local(c"standard_conforming_strings", "on");
    if let Some(kb) = policy::tightened_limit_kb(pg_sys::temp_file_limit as i64, gucs::temp_file_limit_kb()) {
        set_local(c"temp_file_limit", &format!("{kb}kB"));
    }
    if let Some(kb) = policy::tightened_limit_kb(pg_sys::work_mem as i64, gucs::work_mem_kb()) {
        set_local(c"work_mem", &format!("{kb}kB"));
    }
    // Still the caller, but restricted; the subtransaction's rollback restores the context.
    let (mut user, mut context) = (pg_sys::InvalidOid, 0);
    pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
    pg_sys::SetUserIdAndSecContext(user, context | pg_sys::SECURITY_RESTRICTED_OPERATION as i32);

    if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
        return Err(ExecFailure {
            sqlstate: "XX000".into(),
            message: "SPI_connect failed".into(),
            ..Default::default()
        });
    }
    let outcome = prepare_check_and_run(sql, limits, scope, trace);
    pg_sys::SPI_finish();
    outcome
}

unsafe fn prepare_check_and_run(
    sql: &CStr,
    limits: Limits,
    scope: &trust::Scope,
    trace: &mut Trace,
) -> Result<ResultSet, ExecFailure> {
    let refused = |kind, message: String, sqlstate: &str| ExecFailure {
        sqlstate: sqlstate.into(),
        message,
        refusal: Some(kind),
        ..Default::default()
    };
    let plan = pg_sys::SPI_prepare(sql.as_ptr(), 0, std::ptr::null_mut());
    if plan.is_null() {
        return Err(ExecFailure {
            sqlstate: "XX000".into(),
            message: format!("SPI_prepare failed ({})", { pg_sys::SPI_result }),
            ..Default::default()
        });
    }
    // Check the very plan that will run, before it is planned.
    let verdict = guard::check_plan(plan, &gucs::allowed_functions()).map_err(|(kind, reason)| {
        // Nesting deeper than the walk goes is "statement too complex", as PostgreSQL says it.
        let sqlstate = if kind == Refusal::Malformed { "54001" } else { "42501" };
        refused(kind, reason, sqlstate)
    })?;
    trace.reads = verdict.reads.clone();
    if !verdict.rls_bypassed.is_empty() {
        let tables = verdict.rls_bypassed.join(", ");
        match gucs::rls_bypass() {
            gucs::RlsBypass::Allow => {}
            gucs::RlsBypass::Warn => pgrx::warning!(
                "sqlchat: row-level security does not apply to this role on {tables}; the answer may include rows other roles cannot see"
            ),
            gucs::RlsBypass::Refuse => {
                return Err(refused(
                    Refusal::RlsBypass,
                    format!("the query reads {tables} whose row-level security this role bypasses, and sqlchat.rls_bypass is refuse"),
                    "42501",
                ))
            }
        }
    }
    scope.execute(verdict.vetted);

    let max_cost = gucs::max_cost();
    if max_cost > 0.0 {
        if let Some(reason) = guard::estimated_cost(plan).and_then(|cost| policy::cost_refusal(cost, max_cost)) {
            return Err(refused(Refusal::Cost, reason, "54000"));
        }
    }
    trace.running = true;
    let portal = pg_sys::SPI_cursor_open(std::ptr::null(), plan, std::ptr::null_mut(), std::ptr::null(), true);
    if portal.is_null() {
        return Err(refused(Refusal::Statement, "the statement could not be opened as a query".into(), "0A000"));
    }
    let rs = fetch_rows(portal, limits.max_rows, limits.max_bytes);
    pg_sys::SPI_cursor_close(portal);
    Ok(rs)
}

/// Reads at most `max_rows` rows and `max_bytes` bytes of values from the cursor, a few rows at a
/// time, so that the backend never holds more than the byte cap and one batch: rows beyond the
/// caps are never fetched.
unsafe fn fetch_rows(portal: pg_sys::Portal, max_rows: usize, max_bytes: usize) -> ResultSet {
    let mut rs = ResultSet::default();
    let mut encodings = Vec::new();
    let mut bytes = 0usize;
    let mut batch = 1usize;
    loop {
        let want = batch.min(max_rows + 1 - rs.rows.len());
        pg_sys::SPI_cursor_fetch(portal, true, want as std::ffi::c_long);
        let table = pg_sys::SPI_tuptable;
        if table.is_null() {
            break;
        }
        if rs.columns.is_empty() {
            (rs.columns, encodings) = columns_of((*table).tupdesc);
        }
        let got = pg_sys::SPI_processed as usize;
        for r in 0..got {
            if rs.rows.len() == max_rows {
                rs.truncated = true;
                break;
            }
            let tuple = *(*table).vals.add(r);
            match read_row(tuple, (*table).tupdesc, &rs.columns, &encodings, &mut bytes, max_bytes) {
                Some(row) => rs.rows.push(row),
                None => {
                    rs.truncated = true;
                    break;
                }
            }
        }
        pg_sys::SPI_freetuptable(table);
        pgrx::check_for_interrupts!();
        if rs.truncated || got < want {
            break;
        }
        // Larger batches while rows are small: about a tenth of the bytes left per batch.
        let per_row = bytes / rs.rows.len().max(1) + 1;
        batch = ((max_bytes.saturating_sub(bytes)) / 10 / per_row).clamp(1, 1000);
    }
    rs
}

/// How a column's values become JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// From the type's text form (numbers, booleans, json and jsonb by type; the rest as strings).
    Text,
    /// An array, through array_to_json: a JSON array.
    Array,
    /// A composite value, through row_to_json: a JSON object.
    Row,
}

unsafe fn columns_of(tupdesc: pg_sys::TupleDesc) -> (Vec<ResultColumn>, Vec<Encoding>) {
    let natts = (*tupdesc).natts;
    let mut columns = Vec::with_capacity(natts as usize);
    let mut encodings = Vec::with_capacity(natts as usize);
    for i in 1..=natts {
        let name = pg_sys::SPI_fname(tupdesc, i);
        let name =
            if name.is_null() { format!("column{i}") } else { CStr::from_ptr(name).to_string_lossy().into_owned() };
        let typ = pg_sys::SPI_gettypeid(tupdesc, i);
        let type_name = CStr::from_ptr(pg_sys::format_type_be(typ)).to_string_lossy().into_owned();
        let base = pg_sys::getBaseType(typ);
        let mut category: std::ffi::c_char = 0;
        let mut preferred = false;
        pg_sys::get_type_category_preferred(base, &mut category, &mut preferred);
        let category = (category as u8) as char;
        encodings.push(if category == 'A' {
            Encoding::Array
        } else if pg_sys::type_is_rowtype(base) {
            Encoding::Row
        } else {
            Encoding::Text
        });
        columns.push(ResultColumn { name, type_name, category });
    }
    (columns, encodings)
}

/// One row's values as JSON, or None when it would take the values past `max_bytes` (measured
/// before each value is copied: one huge value must not reach Rust's heap).
unsafe fn read_row(
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
    columns: &[ResultColumn],
    encodings: &[Encoding],
    bytes: &mut usize,
    max_bytes: usize,
) -> Option<Vec<serde_json::Value>> {
    let mut row = Vec::with_capacity(columns.len());
    for (i, (col, encoding)) in columns.iter().zip(encodings).enumerate() {
        let attno = (i + 1) as i32;
        let text = match encoding {
            Encoding::Text => pg_sys::SPI_getvalue(tuple, tupdesc, attno),
            Encoding::Array | Encoding::Row => {
                let mut is_null = false;
                let datum = pg_sys::SPI_getbinval(tuple, tupdesc, attno, &mut is_null);
                let convert = if *encoding == Encoding::Array { pg_sys::array_to_json } else { pg_sys::row_to_json };
                match (!is_null).then(|| pgrx::direct_function_call_as_datum(convert, &[Some(datum)])).flatten() {
                    Some(json) => pg_sys::text_to_cstring(json.cast_mut_ptr()),
                    None => std::ptr::null_mut(),
                }
            }
        };
        let value = if text.is_null() {
            serde_json::Value::Null
        } else {
            let text = CStr::from_ptr(text);
            *bytes += text.to_bytes().len();
            if *bytes > max_bytes {
                return None;
            }
            let text = text.to_string_lossy();
            match encoding {
                Encoding::Text => json_value(Some(&text), &col.type_name, col.category),
                _ => json_value(Some(&text), "json", 'U'),
            }
        };
        row.push(value);
    }
    Some(row)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    fn limits() -> Limits {
        Limits { max_rows: 5, max_bytes: 1 << 20, timeout_ms: 2000 }
    }

    fn refused(sql: &str) -> bool {
        matches!(run_readonly(sql, limits()), Err(f) if f.refusal.is_some())
    }

    #[pg_test]
    fn returns_typed_rows() {
        let rs =
            run_readonly("SELECT 1 AS a, 'x'::text AS b, true AS c, NULL::int AS d, '{\"k\":1}'::jsonb AS e", limits())
                .unwrap();
        assert_eq!(rs.columns.len(), 5);
        assert_eq!(rs.to_objects(), serde_json::json!([{"a": 1, "b": "x", "c": true, "d": null, "e": {"k": 1}}]));
        let rs = run_readonly(
            "SELECT ARRAY[1,2] AS a, ARRAY[['x','y']] AS b, ROW(1, 'z')::record AS r, \
             '{\"k\": [1]}'::json AS j, ARRAY['2024-01-02 03:04:05+00'::timestamptz] AS t",
            limits(),
        )
        .unwrap();
        let row = &rs.to_objects()[0];
        assert_eq!(row["a"], serde_json::json!([1, 2]));
        assert_eq!(row["b"], serde_json::json!([["x", "y"]]));
        assert_eq!(row["r"], serde_json::json!({"f1": 1, "f2": "z"}));
        assert_eq!(row["j"], serde_json::json!({"k": [1]}));
        assert!(row["t"][0].as_str().is_some_and(|t| t.starts_with("2024-01-02T") && t.contains('+')), "{row}");
        assert_eq!(rs.columns_json()[1], serde_json::json!({"name": "b", "type": "text[]"}));
    }

    #[pg_test]
    fn caps_bytes_before_copying() {
        let limits = Limits { max_rows: 100, max_bytes: 3000, timeout_ms: 2000 };
        let rs = run_readonly("SELECT repeat('x', 1000) AS x FROM generate_series(1, 10)", limits).unwrap();
        assert_eq!(rs.rows.len(), 3);
        assert!(rs.truncated);
    }

    #[pg_test]
    fn caps_rows() {
        let rs = run_readonly("SELECT g FROM generate_series(1, 100) g", limits()).unwrap();
        assert_eq!(rs.rows.len(), 5);
        assert!(rs.truncated);
    }

    #[pg_test]
    fn refuses_writes_and_side_effects() {
        Spi::run("CREATE TABLE t (id int); CREATE SEQUENCE s").unwrap();
        for sql in [
            "DELETE FROM t",
            "INSERT INTO t VALUES (1)",
            "SELECT 1; SELECT 2",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * INTO t2 FROM t",
            "SELECT nextval('s')",
            "SELECT pg_sleep(0)",
            "SELECT set_config('work_mem', '1MB', false)",
            "SELECT current_setting('sqlchat.api_key')",
            "SELECT * FROM (SELECT pg_advisory_lock(1)) x",
            "SELECT (SELECT pg_notify('c', 'x'))",
            "EXPLAIN ANALYZE SELECT 1",
            "CREATE TABLE x (a int)",
        ] {
            assert!(refused(sql), "not refused: {sql}");
        }
        assert_eq!(Spi::get_one::<i64>("SELECT last_value FROM s").unwrap(), Some(1));
    }

    #[pg_test]
    fn errors_stay_inside_and_the_caller_stays_read_write() {
        Spi::run("CREATE TABLE w (id int)").unwrap();
        Spi::run("INSERT INTO w VALUES (1)").unwrap();
        let f = run_readonly("SELECT nope FROM w", limits()).unwrap_err();
        assert_eq!(f.sqlstate, "42703");
        assert!(f.refusal.is_none());
        let f = run_readonly("SELECT 1/0", limits()).unwrap_err();
        assert_eq!(f.sqlstate, "22012");
        Spi::run("INSERT INTO w VALUES (2)").unwrap();
        assert_eq!(Spi::get_one::<String>("SHOW transaction_read_only").unwrap().as_deref(), Some("off"));
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM w").unwrap(), Some(2));
    }

    #[pg_test]
    fn deadline_ends_runaway_queries() {
        let started = std::time::Instant::now();
        let f = run_readonly(
            "SELECT count(*) FROM generate_series(1, 1000000000)",
            Limits { max_rows: 5, max_bytes: 1 << 20, timeout_ms: 200 },
        )
        .unwrap_err();
        assert_eq!(f.sqlstate, "57014");
        assert!(f.message.contains("query_timeout_ms"), "{}", f.message);
        assert!(started.elapsed().as_millis() < 2000);
    }

    #[pg_test]
    fn volatile_user_functions_are_refused_even_in_views() {
        Spi::run("CREATE FUNCTION f() RETURNS int LANGUAGE sql STABLE AS 'SELECT 1'").unwrap();
        Spi::run("CREATE VIEW v AS SELECT f() AS x").unwrap();
        assert!(refused("SELECT f()"));
        assert!(refused("SELECT * FROM v"));
    }
}
