//! The one place where sqlchat's errors become PostgreSQL ERRORs: SQLSTATE, message, detail and
//! hint, with every configured secret scrubbed from the texts.

use crate::gucs;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use sqlchat_core::error::{scrub, Error};

/// Raises `err` as an ERROR; never returns.
pub fn raise(err: Error) -> ! {
    let secrets = gucs::secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut report = ErrorReport::new(sqlstate_code(err.sqlstate()), scrub(&err.message(), &secrets), "sqlchat");
    if let Some(detail) = err.detail() {
        report = report.set_detail(scrub(&detail, &secrets));
    }
    if let Some(hint) = err.hint() {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR returned")
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
}
