//! Background asks: `submit` queues a question and returns at once; a background worker runs it
//! as the submitting role would have run `ask_full`; `result`, `job_status` and `cancel_job`
//! read or stop it; `NOTIFY sqlchat_jobs, '<id>'` announces its end.
//!
//! How it is shaped (the library must be in shared_preload_libraries):
//! - `sqlchat.job` (store/job.rs) is the truth: a job is queued by the committed INSERT of
//!   `submit` and survives restarts; workers claim the next with `FOR UPDATE SKIP LOCKED`, one
//!   role after another (a role's job goes one round after its last queued one), so that one
//!   role's many jobs do not hold up another's. A role has at most `sqlchat.max_queued_jobs`
//!   queued, and each submit counts as an ask against its quota.
//! - shared memory (shmem.rs) holds hints: worker slots, per-database demand, backends waiting in
//!   `result`, the job each worker runs, and the cancels asked for running jobs. After a commit,
//!   `submit` wakes an idle worker of its database and the launcher; `cancel_job` signals the
//!   worker running the job (it never locks a running job's row, so that a transaction left open
//!   holds up no worker); a `cancel_job` rolled back (to a savepoint, too) never stops a running
//!   job, and wakes a worker again for a queued one.
//! - the launcher (launcher.rs) starts per-database workers on demand, at most
//!   `sqlchat.max_workers`, and visits every database after the server starts.
//! - a worker (worker.rs) is connected to one database where the extension is installed (a
//!   schema called sqlchat that is not the extension's is never read); it runs jobs one at a time,
//!   each in a transaction of its own as the submitting role, while that role's session user could
//!   still log in and become it, with the settings captured at submit set again with the rights
//!   they were set with (settings.rs), and ends when idle for `sqlchat.worker_idle_timeout`.
//! - a job whose worker stopped while it ran (restart, crash, pg_terminate_backend) is found by
//!   the next worker in its database (its worker token is no live worker's) and queued again
//!   once, then failed.
//! - a worker also runs maintenance tasks (maintenance.rs): the removal of jobs past
//!   `sqlchat.job_retention`, and whatever else is added there. Other modules use the same
//!   machinery by adding a `maintenance::Task` and calling `maintenance::request_visit`.
//! - DROP DATABASE first stops that database's workers (object-access hook), so it never waits
//!   for them; its jobs go with it.

mod launcher;
pub mod maintenance;
mod settings;
mod shmem;

pub use shmem::MAX_WORKERS;
mod worker;

use crate::error::{raise, raise_stored, OrRaise};
use crate::gucs;
use crate::store::job::{self, Answer, Cancel, NewJob, Queued, StatusRow, Viewer};
use crate::store::Caller;
use pgrx::prelude::*;
use pgrx::{pg_sys, register_xact_callback, PgXactCallbackEvent};
use sqlchat_core::jobs::State;
use sqlchat_core::pipeline;
use sqlchat_core::Error;
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// How long DROP DATABASE waits for the database's workers to end (PostgreSQL itself then waits
/// five more seconds for any session left).
const DROP_DATABASE_WAIT: Duration = Duration::from_secs(5);
/// Longest sleep of a waiting `result` between two looks at the job (it is normally woken at
/// the job's end; this bounds the wait when it could not register to be woken).
const RESULT_POLL: Duration = Duration::from_millis(200);

/// From _PG_init: shared memory, the launcher and the DROP DATABASE hook, only while
/// shared_preload_libraries is processed (without it `submit` refuses to queue).
pub fn init() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    shmem::init();
    launcher::register();
    unsafe {
        PREV_OBJECT_ACCESS_HOOK = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access_hook);
        pg_sys::RegisterSubXactCallback(Some(on_subxact_event), std::ptr::null_mut());
    }
}

/// Queues a question; the job's id. The job is taken once the transaction commits. Refused when
/// the role has `sqlchat.max_queued_jobs` jobs queued, or is over its quota (the submit counts as
/// the job's ask).
pub fn submit(question: Option<&str>, session_id: Option<&str>) -> i64 {
    if !gucs::preloaded() {
        raise(Error::NotPreloaded { what: "sqlchat.submit".into() });
    }
    ensure_writable("queue a job");
    pipeline::validate_question(question).or_raise();
    let session_id = pipeline::validate_session_id(session_id).or_raise();
    let question = question.unwrap_or_default();
    let role = Caller::current();
    let login = Caller::session();
    let new = NewJob {
        role: &role,
        login: &login,
        // A SECURITY DEFINER function chose the role: no SET ROLE to check again when it runs.
        via_set_role: role.oid != login.oid && !unsafe { pg_sys::InLocalUserIdChange() },
        question,
        session_id,
        settings: settings::capture().to_json(),
    };
    let max_queued = gucs::max_queued_jobs();
    // One role's submits wait for each other's transactions, so that each counts the jobs of the
    // others (a lock on the role itself: no other role can take it, as it could an advisory one).
    unsafe {
        pg_sys::LockSharedObject(pg_sys::AuthIdRelationId, role.oid, 0, pg_sys::ShareUpdateExclusiveLock as i32);
    }
    let id = match job::queue(&new, max_queued) {
        Some(Queued::Job(id)) => id,
        Some(Queued::Full) => raise(Error::JobQueueFull { role: role.name, limit: max_queued }),
        None => raise(Error::Internal { detail: "the job could not be queued (see the server log)".into() }),
    };
    // Counted once queued, so that a refused submit counts nothing; refused, the ERROR takes the
    // job away with the caller's transaction (or its savepoint).
    crate::ops::quota::admit_ask().or_raise();
    after_commit(|p| {
        p.queued += 1;
        p.submitted.push(id);
    });
    id
}

/// The job's answer once it is done (NULL while queued or running, after waiting up to
/// `wait_ms`); the job's own ERROR when it failed.
pub fn result(id: i64, wait_ms: i32) -> Option<Answer> {
    let viewer = Viewer::current();
    let deadline = Instant::now() + Duration::from_millis(wait_ms.max(0) as u64);
    let waiting = (wait_ms > 0 && gucs::preloaded()).then(|| shmem::Waiting::register(id)).flatten();
    loop {
        let outcome = job::outcome(id, &viewer).unwrap_or_else(|| raise(Error::JobNotFound { job: id }));
        match outcome.state {
            State::Done => return outcome.answer.map(|d| unsafe { Answer::from_composite_datum(d) }),
            State::Failed => match outcome.error {
                Some(e) => raise_stored(&e.sqlstate, &e.message, e.detail.as_deref(), e.hint.as_deref()),
                None => raise(Error::Internal { detail: format!("job {id} failed without an error") }),
            },
            State::Cancelled => raise(Error::JobCancelled { job: id }),
            State::Queued | State::Running => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // A job this transaction submitted cannot start before it commits.
        if left.is_zero() || submitted_here(id) {
            return None;
        }
        let poll = if waiting.is_some() { RESULT_POLL } else { RESULT_POLL / 10 };
        wait_latch(left.min(poll));
    }
}

/// The caller's jobs (superusers: everyone's), or one of them.
pub fn status(id: Option<i64>) -> Vec<StatusRow> {
    job::status(id, &Viewer::current())
}

/// Cancels a job: a queued one never runs, a running one is interrupted once this transaction
/// commits (unless it ends first). False when it had already ended.
pub fn cancel(id: i64) -> bool {
    ensure_writable("cancel a job");
    match job::cancel(id, &Viewer::current()) {
        None => raise(Error::JobNotFound { job: id }),
        Some(Cancel::Queued) => {
            after_commit(|p| p.ended.push(Noted::now(id)));
            true
        }
        Some(Cancel::Running) => {
            after_commit(|p| p.cancels.push(Noted::now(id)));
            true
        }
        Some(Cancel::Ended) => false,
    }
}

fn ensure_writable(what: &'static str) {
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise(Error::JobReadOnly { what, place: "on a hot standby" });
    }
    if unsafe { pg_sys::XactReadOnly } {
        raise(Error::JobReadOnly { what, place: "in a read-only transaction" });
    }
}

fn wait_latch(wait: Duration) {
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            wait.as_millis().clamp(1, i32::MAX as u128) as std::ffi::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    check_for_interrupts!();
}

// ---- what a transaction does once it commits ----------------------------------------------------

/// Shared-memory news a transaction gives once it commits (the rows are visible by then).
#[derive(Default)]
struct Pending {
    /// Jobs queued in this database.
    queued: u32,
    /// Jobs this transaction submitted: `result` does not wait for them.
    submitted: Vec<i64>,
    /// Running jobs to interrupt.
    cancels: Vec<Noted>,
    /// Jobs that ended (cancelled while queued): wake their waiters; on abort, they are queued
    /// again and a worker is woken for them.
    ended: Vec<Noted>,
}

/// A job a cancel was asked for, with the subtransaction that asked: rolled back to a savepoint
/// before it, the cancel never happened.
struct Noted {
    job: i64,
    subxact: pg_sys::SubTransactionId,
}

impl Noted {
    fn now(job: i64) -> Noted {
        Noted { job, subxact: unsafe { pg_sys::GetCurrentSubTransactionId() } }
    }
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

fn after_commit(note: impl FnOnce(&mut Pending)) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            register_xact_callback(PgXactCallbackEvent::Commit, on_commit);
            register_xact_callback(PgXactCallbackEvent::Abort, on_abort);
            // A prepared transaction ends in another session: its news is not this session's.
            register_xact_callback(PgXactCallbackEvent::Prepare, || drop(PENDING.with(|p| p.borrow_mut().take())));
        }
        note(p.get_or_insert_with(Pending::default));
    });
}

fn on_commit() {
    let Some(p) = PENDING.with(|p| p.borrow_mut().take()) else { return };
    if !gucs::preloaded() {
        return;
    }
    let database = unsafe { pg_sys::MyDatabaseId };
    if p.queued > 0 {
        shmem::jobs_queued(database, p.queued);
    }
    p.cancels.into_iter().for_each(|c| shmem::cancel_running(database, c.job));
    p.ended.into_iter().for_each(|c| shmem::job_ended(c.job));
}

fn on_abort() {
    let Some(p) = PENDING.with(|p| p.borrow_mut().take()) else { return };
    requeued(p.ended.len());
}

/// A queued job whose cancel is rolled back is queued again: a worker is woken for it.
fn requeued(count: usize) {
    if gucs::preloaded() && count > 0 {
        shmem::jobs_queued(unsafe { pg_sys::MyDatabaseId }, count as u32);
    }
}

/// A subtransaction rolled back takes the cancels asked in it (or in any subtransaction begun
/// since, all of them its children) with it.
#[pg_guard]
unsafe extern "C-unwind" fn on_subxact_event(
    event: pg_sys::SubXactEvent::Type,
    aborted: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event != pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        return;
    }
    let requeued_jobs = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let Some(p) = p.as_mut() else { return 0 };
        p.cancels.retain(|c| c.subxact < aborted);
        let before = p.ended.len();
        p.ended.retain(|c| c.subxact < aborted);
        before - p.ended.len()
    });
    requeued(requeued_jobs);
}

fn submitted_here(id: i64) -> bool {
    PENDING.with(|p| p.borrow().as_ref().is_some_and(|p| p.submitted.contains(&id)))
}

// ---- DROP DATABASE ------------------------------------------------------------------------------

static mut PREV_OBJECT_ACCESS_HOOK: pg_sys::object_access_hook_type = None;

/// Before DROP DATABASE checks for other sessions, the database's workers are told to end and
/// waited for, so that the drop neither waits for them nor fails (WITH (FORCE) by a non-superuser
/// owner could not terminate them).
#[pg_guard]
unsafe extern "C-unwind" fn object_access_hook(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    if let Some(prev) = PREV_OBJECT_ACCESS_HOOK {
        prev(access, class_id, object_id, sub_id, arg);
    }
    if access == pg_sys::ObjectAccessType::OAT_DROP && class_id == pg_sys::DatabaseRelationId {
        let pids = shmem::terminate_database_workers(object_id);
        let deadline = Instant::now() + DROP_DATABASE_WAIT;
        while !pids.is_empty() && shmem::any_worker_left(&pids) && Instant::now() < deadline {
            pg_sys::pg_usleep(10_000);
            check_for_interrupts!();
        }
    }
}
