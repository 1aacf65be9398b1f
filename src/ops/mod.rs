//! Operations: statistics and Prometheus metrics in shared memory, per-role quotas, progress
//! NOTICEs, the slow log, the interaction log (`sqlchat.log`) and `explain`. The SQL functions call `observe_ask` around every ask;
//! the gateway client and the host report each request and statement to `meter`.

pub mod log;
pub mod meter;
pub mod progress;
pub mod quota;
pub mod shmem;
mod sql;
pub mod stats;

use crate::error::{raise, sqlstate_text};
use crate::gucs;
use crate::store::Caller;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::PgTryBuilder;
use sqlchat_core::ops::record::MAX_SESSION_CHARS;
use sqlchat_core::ops::stats::Ending;
use sqlchat_core::pipeline::Outcome;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;

/// Called from _PG_init.
pub fn init() {
    shmem::init();
    quota::register_commit_callback();
}

/// Runs one ask (`run`) under observation: the quota is checked before anything else (so a
/// refused ask makes no gateway call), and when it ends, answered or not, its figures go to the
/// statistics and the quota, a slow one to the server log, and its row to the interaction log.
/// An ERROR is recorded, then raised again unchanged.
pub fn observe_ask(question: Option<&str>, session_id: Option<&str>, run: impl FnOnce() -> Outcome) -> Outcome {
    let caller = Caller::current();
    warn_once_without_shared_memory();
    meter::begin();
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| {
        if let Err(e) = quota::admit_ask() {
            raise(e);
        }
        run()
    }))
    .catch_others(|caught| {
        let (sqlstate, message) = match &caught {
            CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => {
                (sqlstate_text(e.sql_error_code()), e.message().to_string())
            }
            CaughtError::RustPanic { .. } => ("XX000".to_string(), "internal error".to_string()),
        };
        finish(&caller, question, session_id, Err((&sqlstate, &message)));
        caught.rethrow()
    })
    .execute();
    finish(&caller, question, session_id, Ok(&outcome));
    outcome
}

fn finish(caller: &Caller, question: Option<&str>, session_id: Option<&str>, ended: Result<&Outcome, (&str, &str)>) {
    let Some(mut m) = meter::end() else { return };
    let total = m.started.elapsed();
    let ending = match ended {
        Ok(out) => Ending::Answered { engine: out.engine.to_string(), from_cache: out.from_cache },
        Err((sqlstate, _)) => Ending::Failed { sqlstate: sqlstate.to_string() },
    };
    m.counters.add_ask(&ending, total.as_micros() as u64);
    let tokens = m.counters.total_tokens();
    stats::add(|c| c.merge(&m.counters));
    quota::charge_tokens(tokens);

    let r = &mut m.record;
    r.total_ms = meter::ms(total);
    r.role = caller.name.clone();
    // Secrets are scrubbed before any text is cut, so that no part of one survives a cut.
    let secrets = crate::error::secrets();
    let questions = gucs::log_questions();
    r.session = session_id.map(|s| sqlchat_core::error::excerpt(&secrets.scrub(s), MAX_SESSION_CHARS));
    r.question = question.and_then(|q| questions.apply(&secrets.scrub(q)));
    match ended {
        Ok(out) => {
            r.engine = Some(out.engine.to_string());
            r.verified = out.engine == "verified";
            r.from_cache = out.from_cache;
            r.attempts = out.attempts;
            r.set_sql(out.sql.as_deref().map(|s| questions.apply_to_sql(&secrets.scrub(s))).as_deref());
            if gucs::progress() {
                pgrx::notice!("sqlchat: done: answered by {} [{:.1} ms]", out.engine, r.total_ms);
            }
        }
        Err((sqlstate, message)) => {
            r.set_error(sqlstate, &questions.apply_to_message(sqlstate, &secrets.scrub(message)))
        }
    }
    let threshold = gucs::log_min_duration_ms();
    if threshold >= 0 && r.total_ms >= threshold as f64 {
        let line = crate::error::secrets().scrub(&r.slow_log_line());
        ErrorReport::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, format!("sqlchat slow ask: {line}"), "sqlchat")
            .report(PgLogLevel::LOG_SERVER_ONLY);
    }
    log::hand_over(caller, m.started_at, m.record);
}

thread_local! {
    static WARNED: Cell<bool> = const { Cell::new(false) };
}

/// Once per session: without preloading there is no shared memory, so asks are not counted.
pub(crate) fn warn_once_without_shared_memory() {
    if shmem::available() || WARNED.with(|w| w.replace(true)) {
        return;
    }
    pgrx::notice!(
        "sqlchat: statistics, quotas and the interaction log (sqlchat.log) are off in this session: sqlchat is \
         not in shared_preload_libraries (add it in postgresql.conf and restart the server)"
    );
}
