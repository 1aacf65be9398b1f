//! A database's worker: started by the launcher, connected to one database as the bootstrap
//! superuser, it does nothing unless the extension is installed there with its own job table (a
//! look-alike schema sqlchat is ignored); it queues again or fails the jobs of workers that are
//! gone, runs the maintenance tasks, then takes queued jobs one at a time, one role after another
//! (`sqlchat_core::jobs::queue_round`), until none is left; it ends at once when it ran none, else
//! after `sqlchat.worker_idle_timeout` without work.
//!
//! A job runs in one transaction, only while its session user could still log in to the database
//! and become the job's role: the role that submitted it becomes the session's user, the settings
//! captured at submit apply with the rights they were set with, `statement_timeout` (within
//! `sqlchat.job_timeout`) runs from the job's start, and `api::answer` (what `sqlchat.ask_full`
//! runs) is called in a subtransaction; its answer or its ERROR is recorded in the same
//! transaction, so memory written by the ask is kept exactly when it would have been by
//! `ask_full`. Then the identity and settings are the worker's again.
//! `cancel_job` sends SIGUSR2: the handler cancels the job if it is still the one running.

use super::maintenance::{self, Schedule};
use super::{settings, shmem};
use crate::api;
use crate::compat;
use crate::gucs;
use crate::store;
use crate::store::job::{self, Answer, Claimed, StoredError};
use crate::subxact::{self, OnSuccess};
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::jobs::{role_refusal, run_limit_ms, should_exit, JobRoles, RoleCheck, Snapshot};
use std::ffi::{c_int, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Jobs still queued are counted up to this after each claim (the launcher needs no more).
const COUNT_QUEUED_UP_TO: i64 = shmem::MAX_WORKERS as i64 * 2;
/// When queued jobs could not be taken (their rows locked), a worker looks again this much later.
const LOCKED_JOBS_RETRY: Duration = Duration::from_secs(5);

extern "C" {
    fn enable_timeout_after(id: c_int, delay_ms: c_int);
    fn disable_timeout(id: c_int, keep_indicator: bool);
}

extern "C-unwind" {
    // PostgreSQL's own signal handlers, by their C symbols (pgrx binds them as Rust wrappers).
    #[link_name = "die"]
    fn die_handler(signal: c_int);
    #[link_name = "SignalHandlerForConfigReload"]
    fn reload_handler(signal: c_int);
}

static MY_SLOT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// SIGUSR2: a cancel was asked for a job; only flags and the latch, as PostgreSQL's handlers do.
unsafe extern "C-unwind" fn on_cancel_signal(_signal: c_int) {
    let saved_errno = *libc::__errno_location();
    let slot = MY_SLOT.load(Ordering::SeqCst);
    if slot < shmem::MAX_WORKERS && shmem::cancel_asked(slot) {
        pg_sys::QueryCancelPending = 1;
        pg_sys::InterruptPending = 1;
    }
    if !pg_sys::MyLatch.is_null() {
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
    *libc::__errno_location() = saved_errno;
}

unsafe extern "C-unwind" fn on_exit(code: c_int, slot: pg_sys::Datum) {
    shmem::worker_detach(slot.value(), code != 0, pg_sys::GetCurrentTimestamp());
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sqlchat_worker_main(arg: pg_sys::Datum) {
    let slot = arg.value();
    let database = shmem::slot_database(slot);
    if database == pg_sys::InvalidOid {
        return;
    }
    unsafe {
        compat::set_signal_handler(libc::SIGTERM, Some(die_handler));
        compat::set_signal_handler(libc::SIGHUP, Some(reload_handler));
        compat::set_signal_handler(libc::SIGUSR2, Some(on_cancel_signal));
        pg_sys::BackgroundWorkerUnblockSignals();
        pg_sys::before_shmem_exit(Some(on_exit), slot.into());
        pg_sys::BackgroundWorkerInitializeConnectionByOid(database, pg_sys::InvalidOid, 0);
    }
    let Some(token) = shmem::worker_attach(slot, database) else { return };
    MY_SLOT.store(slot, Ordering::SeqCst);
    if let Ok(name) = CString::new("sqlchat worker") {
        unsafe { pg_sys::pgstat_report_appname(name.as_ptr()) };
    }
    Worker { slot, database, token, schedule: Schedule::new(), locked_jobs: false }.run();
}

struct Worker {
    slot: usize,
    database: pg_sys::Oid,
    token: i64,
    schedule: Schedule,
    /// The last claim found queued jobs it could not take: a `cancel_job` holds their rows in a
    /// transaction still open. Its rollback wakes a worker, but that of a prepared transaction,
    /// ended from another session, wakes nobody: a worker looks again later.
    locked_jobs: bool,
}

impl Worker {
    fn run(&mut self) {
        shmem::take_visit(self.database, now());
        if !in_transaction(|| store::has_own_table("sqlchat.job")) {
            // sqlchat is not installed here (a visit after the server started), or schema
            // sqlchat is not the extension's.
            shmem::set_queued(self.database, 0);
            maintenance::abandon(self.database);
            shmem::leave(self.slot, self.database, true);
            return;
        }
        self.recover();
        // Work handed over (log rows) counts as a job: the worker then stays for more.
        let mut ran_a_job = self.schedule.run(true);
        let mut last_work = Instant::now();
        loop {
            unsafe { pg_sys::ResetLatch(pg_sys::MyLatch) };
            check_for_interrupts!();
            reload_settings();
            if self.maintain() {
                ran_a_job = true;
                last_work = Instant::now();
            }
            while !self.over_limit() {
                let Some(claimed) = self.claim() else { break };
                self.run_job(claimed);
                ran_a_job = true;
                last_work = Instant::now();
                reload_settings();
                if shmem::should_yield(gucs::max_workers(), self.database) {
                    self.end(true);
                    return;
                }
                self.maintain();
            }
            if self.over_limit() || shmem::should_give_way(gucs::max_workers(), self.database) {
                self.end(true);
                return;
            }
            let idle_timeout = gucs::worker_idle_timeout();
            if should_exit(ran_a_job, last_work.elapsed(), idle_timeout) && self.end(false) {
                return;
            }
            let mut wait = idle_timeout.saturating_sub(last_work.elapsed());
            if let Some(due) = self.schedule.next_due() {
                wait = wait.min(due.saturating_duration_since(Instant::now()));
            }
            wait_latch(wait.max(Duration::from_millis(1)));
        }
    }

    /// A requested visit (jobs of a worker that stopped, work handed to a maintenance task): the
    /// recovery and every task; else the tasks that are due or have work waiting. Returns
    /// whether work handed over in shared memory was done.
    fn maintain(&mut self) -> bool {
        if shmem::take_visit(self.database, now()) {
            self.recover();
            self.schedule.run(true)
        } else {
            self.schedule.run(false)
        }
    }

    /// More workers than sqlchat.max_workers allows (it was lowered; 0 pauses every worker).
    fn over_limit(&self) -> bool {
        shmem::over_limit(gucs::max_workers())
    }

    /// Leaves the slot (see `shmem::leave`) after telling the launcher when the maintenance
    /// tasks are due next; false when jobs arrived meanwhile and the worker stays.
    fn end(&mut self, yielding: bool) -> bool {
        self.schedule.run(true);
        let mut due = self.schedule.next_due().map(|due| due.saturating_duration_since(Instant::now()));
        if self.locked_jobs {
            due = Some(due.map_or(LOCKED_JOBS_RETRY, |d| d.min(LOCKED_JOBS_RETRY)));
        }
        if let Some(due) = due {
            maintenance::request_visit(self.database, due);
        }
        let left = shmem::leave(self.slot, self.database, yielding);
        // Work handed over while this worker still held its slot woke no other: a visit.
        if left && maintenance::work_waiting(self.database) {
            maintenance::request_visit(self.database, Duration::ZERO);
        }
        left
    }

    fn recover(&self) {
        let cancels = shmem::stopped_cancels(self.database);
        let ended = in_transaction(|| job::recover(&shmem::live_tokens(), &cancels));
        shmem::forget_stopped_cancels(self.database, &cancels);
        ended.into_iter().for_each(shmem::job_ended);
    }

    /// The next queued job, now marked running by this worker; None when none can be taken.
    fn claim(&mut self) -> Option<Claimed> {
        in_transaction(|| {
            let (claimed, remaining) = job::claim(self.token, COUNT_QUEUED_UP_TO)?;
            self.locked_jobs = claimed.is_none() && remaining > 0;
            match &claimed {
                // Before the claim commits: a cancel_job that sees the job running finds it here.
                Some(c) => {
                    shmem::set_busy(self.slot, c.id);
                    shmem::set_queued(self.database, remaining);
                }
                // Those counted are locked by a cancel_job whose transaction is still open: if it
                // rolls back, its abort says they are queued again.
                None => shmem::set_queued(self.database, 0),
            }
            claimed
        })
    }

    fn run_job(&self, claimed: Claimed) {
        report_activity(Some(&format!("sqlchat job {}", claimed.id)));
        let ended = in_transaction(|| {
            let result = execute(&claimed);
            let cancel_asked = shmem::job_done(self.slot);
            // A cancel or timeout that arrived after the job's own work ended has nothing left to stop.
            unsafe { pg_sys::QueryCancelPending = 0 };
            job::finish(claimed.id, self.token, result, cancel_asked)
        });
        match ended {
            Some(_) => shmem::job_ended(claimed.id),
            // Not recorded (the server log says why): the next worker here queues it again or
            // fails it, as a job whose worker stopped.
            None => maintenance::request_visit(self.database, Duration::ZERO),
        }
        shmem::set_idle(self.slot);
        report_activity(None);
    }
}

/// Runs a claimed job as the role that submitted it, with its settings: the answer, or the ERROR
/// as the role would have seen it from `ask_full`. The ask was counted against the role's quota
/// when it was submitted.
fn execute(claimed: &Claimed) -> Result<Answer, StoredError> {
    if let Some(refusal) = role_refusal(
        JobRoles { job: claimed.id, role: &claimed.role.name, login: &claimed.login.name, database: &database_name() },
        role_check(claimed),
    ) {
        return Err(StoredError::of(&refusal));
    }
    let Some(snapshot) = claimed.settings.as_ref().and_then(Snapshot::from_json) else {
        let detail = format!("the settings of job {} could not be read", claimed.id);
        return Err(StoredError::of(&sqlchat_core::Error::Internal { detail }));
    };
    let role = claimed.role.oid;
    let started = Instant::now();
    let mut limit = (0, false);
    let outcome = subxact::run(OnSuccess::Commit, || unsafe {
        pg_sys::SetSessionAuthorization(role, pg_sys::superuser_arg(role));
        let nest_level = settings::apply(&snapshot, role);
        limit = run_limit_ms(pg_sys::StatementTimeout, gucs::job_timeout_ms());
        if limit.0 > 0 {
            enable_timeout_after(compat::STATEMENT_TIMEOUT, limit.0);
        }
        let answer = crate::ops::quota::admitted_at_submit(claimed.login.clone(), || {
            api::answer(Some(&claimed.question), claimed.session_id.as_deref())
        });
        settings::restore(nest_level);
        answer
    });
    unsafe {
        disable_timeout(compat::STATEMENT_TIMEOUT, false);
        pg_sys::SetSessionAuthorization(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID), true);
    }
    match outcome {
        Err(f) if f.is_cancel() && limit.1 && started.elapsed().as_millis() >= limit.0 as u128 => {
            let limit_s = i64::from(limit.0 / 1000);
            Err(StoredError::of(&sqlchat_core::Error::JobTimedOut { job: claimed.id, limit_s }))
        }
        // As `guarded` raised it (scrubbed of the secrets): what ask_full's caller would have seen.
        outcome => outcome.map_err(|f| StoredError {
            sqlstate: f.sqlstate,
            message: f.message,
            detail: f.detail,
            hint: f.hint,
        }),
    }
}

/// What a login of the job's session user followed by `SET ROLE` would find now (the catalogs as
/// of this transaction).
fn role_check(claimed: &Claimed) -> RoleCheck {
    let query = format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) $1 \
                          AND rolname OPERATOR(pg_catalog.=) $2), \
                l.oid IS NOT NULL, COALESCE(l.rolcanlogin, false), \
                COALESCE(CASE WHEN l.oid IS NOT NULL THEN pg_catalog.has_database_privilege(l.oid, $5, 'CONNECT') END, false), \
                NOT $6 OR COALESCE(CASE WHEN l.oid IS NOT NULL \
                  THEN pg_catalog.pg_has_role(l.oid, $1, '{privilege}') END, false) \
         FROM (SELECT) AS one LEFT JOIN pg_catalog.pg_roles l \
           ON l.oid OPERATOR(pg_catalog.=) $3 AND l.rolname OPERATOR(pg_catalog.=) $4",
        privilege = compat::SET_ROLE_PRIVILEGE,
    );
    let args = [
        claimed.role.oid.into(),
        claimed.role.name.as_str().into(),
        claimed.login.oid.into(),
        claimed.login.name.as_str().into(),
        unsafe { pg_sys::MyDatabaseId }.into(),
        claimed.via_set_role.into(),
    ];
    let row = gucs::with_search_path(gucs::SYSTEM_SEARCH_PATH, || {
        Spi::connect(|c| {
            let row = c.select(&query, None, &args)?.first();
            Ok::<_, pgrx::spi::Error>([row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?])
        })
    });
    // Nothing found is nothing allowed.
    let [role_exists, login_exists, login_allowed, connect_allowed, set_role_allowed] =
        row.unwrap_or_default().map(|b: Option<bool>| b.unwrap_or(false));
    RoleCheck { role_exists, login_exists, login_allowed, connect_allowed, set_role_allowed }
}

fn database_name() -> String {
    unsafe {
        let name = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if name.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}

/// Runs `work` in a transaction of its own with a snapshot for SPI; an ERROR escaping it ends the
/// worker (PostgreSQL makes it FATAL outside any error handler), and the launcher starts another.
pub fn in_transaction<R>(work: impl FnOnce() -> R) -> R {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let r = work();
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
        r
    }
}

fn now() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

fn reload_settings() {
    unsafe {
        if pg_sys::ConfigReloadPending != 0 {
            pg_sys::ConfigReloadPending = 0;
            pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
        }
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
    }
}

fn report_activity(what: Option<&str>) {
    let text = what.and_then(|w| CString::new(w).ok());
    let state = if text.is_some() { pg_sys::BackendState::STATE_RUNNING } else { pg_sys::BackendState::STATE_IDLE };
    unsafe { pg_sys::pgstat_report_activity(state, text.as_ref().map_or(std::ptr::null(), |t| t.as_ptr())) };
}
