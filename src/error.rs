//! The one place where sqlchat's texts leave the backend: its errors become PostgreSQL ERRORs
//! (SQLSTATE, message, detail, hint), NOTICEs are sent, and whatever ERROR escapes a
//! SQL function is raised again without pgrx's Rust backtrace (attached when RUST_BACKTRACE is set
//! in the server's environment) and without a panic's text. Every text is scrubbed of the
//! configured secrets first.

use crate::gucs;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport, ErrorReportWithLevel};
use pgrx::prelude::*;
use pgrx::PgTryBuilder;
use sqlchat_core::error::hint::CancelCause;
use sqlchat_core::error::{Error, Secrets};
use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

thread_local! {
    /// The secrets' automaton, built again only when a secret's value changes.
    static SECRETS: RefCell<Option<(Vec<String>, Arc<Secrets>)>> = const { RefCell::new(None) };
}

/// The configured secrets (API key, Authorization value) and what finds them in a text.
pub fn secrets() -> Arc<Secrets> {
    let values = gucs::secrets();
    SECRETS.with(|cell| {
        let mut cached = cell.borrow_mut();
        match cached.as_ref() {
            Some((v, s)) if *v == values => Arc::clone(s),
            _ => {
                let s = Arc::new(Secrets::new(&values));
                *cached = Some((values, Arc::clone(&s)));
                s
            }
        }
    })
}

/// Raises `err` as an ERROR; never returns.
pub fn raise(err: Error) -> ! {
    let r = err.report(&secrets());
    let mut report = ErrorReport::new(sqlstate_code(&r.sqlstate), r.message, "sqlchat").set_hint(r.hint);
    if let Some(detail) = r.detail {
        report = report.set_detail(detail);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR returned")
}

/// Sends a NOTICE to the client.
pub fn notice(text: &str) {
    ErrorReport::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, secrets().scrub(text), "sqlchat")
        .report(PgLogLevel::NOTICE);
}

/// Runs the body of a SQL function. An ERROR leaving it keeps its SQLSTATE, message, detail and
/// hint, scrubbed, and loses the Rust backtrace pgrx would add to its detail; a cancel gets the
/// hint of its cause; a Rust panic becomes sqlchat's internal error, its text and location going
/// to the server log only.
pub fn guarded<R>(body: impl FnOnce() -> R) -> R {
    crate::exec::trust::refuse_reentry("sqlchat's functions");
    PgTryBuilder::new(AssertUnwindSafe(body)).catch_others(|caught| raise_again(caught)).execute()
}

fn raise_again(caught: CaughtError) -> ! {
    let e = match caught {
        CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => e,
        CaughtError::RustPanic { ereport, .. } => {
            log_panic(&ereport);
            raise(Error::Internal { detail: "a panic in sqlchat (the server log has its details)".into() })
        }
    };
    let secrets = secrets();
    let code = e.sql_error_code();
    let hint = match e.hint() {
        Some(h) => Some(secrets.scrub(h)),
        None if code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED => Some(CancelCause::of(e.message()).hint().into()),
        None => None,
    };
    let mut report = ErrorReport::new(code, secrets.scrub(e.message()), "sqlchat");
    if let Some(detail) = e.detail() {
        report = report.set_detail(secrets.scrub(detail));
    }
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    let level = if e.level() > PgLogLevel::ERROR { e.level() } else { PgLogLevel::ERROR };
    report.report(level);
    unreachable!("ERROR returned")
}

/// Writes a caught panic's text and location (and its backtrace, when one was captured) to the
/// server log only, never to the client.
pub fn log_panic(panic: &ErrorReportWithLevel) {
    let mut text = format!("sqlchat panicked at {}:{}: {}", panic.file(), panic.line_number(), panic.message());
    if let Some(bt) = panic.backtrace().filter(|b| b.status() == std::backtrace::BacktraceStatus::Captured) {
        text.push_str(&format!("\n{bt}"));
    }
    ErrorReport::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, secrets().scrub(&text), "sqlchat")
        .report(PgLogLevel::LOG_SERVER_ONLY);
}

// ---- background asks ----

/// Raises again an ERROR recorded earlier (a background job's), exactly as it was raised then.
pub fn raise_stored(sqlstate: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(sqlstate_code(sqlstate), message.to_string(), "sqlchat");
    if let Some(detail) = detail {
        report = report.set_detail(detail.to_string());
    }
    if let Some(hint) = hint {
        report = report.set_hint(hint.to_string());
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR returned")
}

/// Unwraps a core result or raises its error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}

/// PostgreSQL's packed form of a five-character SQLSTATE (MAKE_SQLSTATE).
pub fn sqlstate_code(sqlstate: &str) -> PgSqlErrorCode {
    let b = sqlstate.as_bytes();
    if b.len() != 5 {
        return PgSqlErrorCode::ERRCODE_INTERNAL_ERROR;
    }
    let packed =
        b.iter().enumerate().fold(0i32, |acc, (i, &c)| acc | ((((c as i32) - ('0' as i32)) & 0x3F) << (6 * i)));
    PgSqlErrorCode::from(packed)
}

/// The five-character SQLSTATE of a packed code.
pub fn sqlstate_text(code: PgSqlErrorCode) -> String {
    let packed = code as isize as i32;
    (0..5).map(|i| ((((packed >> (6 * i)) & 0x3F) + ('0' as i32)) as u8) as char).collect()
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn sqlstates_round_trip() {
        for s in ["57014", "42703", "22023", "08001", "XX000", "42501", "55000"] {
            assert_eq!(sqlstate_text(sqlstate_code(s)), s);
        }
        assert_eq!(sqlstate_code("57014"), PgSqlErrorCode::ERRCODE_QUERY_CANCELED);
    }

    /// What `guarded` raises for `body`, caught again: SQLSTATE, message, detail, hint.
    fn raised_by(body: impl FnOnce()) -> (String, String, Option<String>, Option<String>) {
        PgTryBuilder::new(AssertUnwindSafe(|| {
            guarded(body);
            panic!("no ERROR raised")
        }))
        .catch_others(|caught| match caught {
            CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => (
                sqlstate_text(e.sql_error_code()),
                e.message().to_string(),
                e.detail_with_backtrace(),
                e.hint().map(str::to_string),
            ),
            CaughtError::RustPanic { ereport, .. } => panic!("a panic left guarded: {}", ereport.message()),
        })
        .execute()
    }

    #[pg_test]
    fn a_panic_becomes_an_internal_error_without_its_text() {
        let (sqlstate, message, detail, hint) = raised_by(|| panic!("index 7 out of range in secret_fn"));
        assert_eq!(sqlstate, "XX000");
        assert!(!message.contains("secret_fn") && message.starts_with("sqlchat: internal error"), "{message}");
        assert!(detail.is_none(), "{detail:?}");
        assert!(hint.is_some());
    }

    #[pg_test]
    fn postgres_errors_keep_their_texts_and_lose_any_backtrace() {
        let (sqlstate, message, detail, hint) = raised_by(|| {
            Spi::run("SELECT 1/0").unwrap();
        });
        assert_eq!(sqlstate, "22012");
        assert_eq!(message, "division by zero");
        assert!(detail.is_none(), "{detail:?}");
        assert!(hint.is_none());
    }

    #[pg_test]
    fn a_cancel_gets_the_hint_of_its_cause() {
        let (sqlstate, _, _, hint) = raised_by(|| {
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                "canceling statement due to statement timeout",
                "t",
            )
            .report(PgLogLevel::ERROR)
        });
        assert_eq!(sqlstate, "57014");
        assert!(hint.unwrap().contains("statement_timeout"));
    }
}
