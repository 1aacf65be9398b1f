//! Running work inside an internal subtransaction and catching its ERROR, the way PL/pgSQL's
//! exception blocks and PL/Python's plpy_spi.c do: the caller's transaction is never aborted.

use crate::error::{log_panic, secrets, sqlstate_text};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;
use std::panic::AssertUnwindSafe;

/// An ERROR caught inside the subtransaction.
#[derive(Debug, Clone)]
pub struct Failure {
    pub sqlstate: String,
    pub message: String,
}

impl Failure {
    pub fn is_cancel(&self) -> bool {
        self.sqlstate == "57014"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSuccess {
    Commit,
    Rollback,
}

/// Runs `work` in a new subtransaction; on success it is committed or rolled back as asked, on
/// ERROR it is always rolled back and the error returned. Memory context and resource owner are
/// restored either way.
pub fn run<R>(on_success: OnSuccess, work: impl FnOnce() -> R) -> Result<R, Failure> {
    unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        let caller_owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(caller_context);

        let result = PgTryBuilder::new(AssertUnwindSafe(move || Ok(work())))
            .catch_others(|caught| Err(failure_from(caught)))
            .execute();

        if result.is_ok() && on_success == OnSuccess::Commit {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(caller_context);
        pg_sys::CurrentResourceOwner = caller_owner;
        result
    }
}

/// The caught ERROR's SQLSTATE and message, scrubbed of the configured secrets (it goes back to
/// the model and may reach the caller); a panic's text and location go to the server log only.
fn failure_from(caught: CaughtError) -> Failure {
    match caught {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
            Failure { sqlstate: sqlstate_text(r.sql_error_code()), message: secrets().scrub_configured(r.message()) }
        }
        CaughtError::RustPanic { ereport, .. } => {
            log_panic(&ereport);
            Failure {
                sqlstate: "XX000".into(),
                message: "internal error in sqlchat (the server log has its details)".into(),
            }
        }
    }
}
