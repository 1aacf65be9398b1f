//! The one place where sqlchat's errors become PostgreSQL ERRORs (SQLSTATE, message, detail,
//! hint), every text scrubbed of the configured secrets first.

use crate::gucs;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use sqlchat_core::error::{Error, Secrets};
use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    /// The secrets' automaton, built again only when a secret's value changes.
    static SECRETS: RefCell<Option<(Vec<String>, Rc<Secrets>)>> = const { RefCell::new(None) };
}

/// The configured secrets (API key, Authorization value) and what finds them in a text.
pub fn secrets() -> Rc<Secrets> {
    let values = gucs::secrets();
    SECRETS.with(|cell| {
        let mut cached = cell.borrow_mut();
        match cached.as_ref() {
            Some((v, s)) if *v == values => Rc::clone(s),
            _ => {
                let s = Rc::new(Secrets::new(&values));
                *cached = Some((values, Rc::clone(&s)));
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
