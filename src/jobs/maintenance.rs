//! Work a database's worker does besides jobs. Each task runs in a transaction of its own, as the
//! worker (the bootstrap superuser; store code switches to the tables' owner), with its ERRORs
//! caught and logged: when the worker starts in the database, when the task is due again, when a
//! visit is requested, and once more before the worker ends, so that the launcher can come back
//! when the earliest task is due.
//!
//! Adding work (e.g. writing records handed over in shared memory into a table, or removing old
//! rows of another table): add a `Task` to `TASKS`, and call `request_visit` from whatever hands
//! it work; a worker already connected to that database is woken, else the launcher starts one.
//!
//! Work handed over in shared memory (the interaction log's rows, `ops::log`): the task also
//! says whether some waits for a database (`waiting`), and whoever hands it over calls
//! `work_handed_over`, which wakes an idle worker of the database and starts none while one is
//! there (a busy one does the work after its job). A worker runs such a task when the work is
//! ready (the task may let it gather into batches first), and again while more is ready (each
//! run in a transaction of its own); waiting work counts as work for the idle timeout, and a
//! worker leaving with work waiting asks for another visit.

use crate::gucs;
use crate::ops;
use crate::store;
use crate::subxact::{self, OnSuccess};
use pgrx::pg_sys;
use std::time::{Duration, Instant};

pub struct Task {
    pub name: &'static str,
    /// Does the task's work in the current database; returns when it wants to run again there
    /// (None: only at the next visit, or when work waits).
    pub run: fn() -> Option<Duration>,
    /// For work handed over in shared memory: whether some waits for a database, and in how
    /// long it is to be done (zero: now; the task may gather work before it writes a batch).
    pub waiting: Option<fn(pg_sys::Oid) -> Option<Duration>>,
    /// For work handed over in shared memory: gives up what waits for a database where sqlchat
    /// is not installed.
    pub abandon: Option<fn(pg_sys::Oid)>,
}

pub const TASKS: &[Task] = &[
    Task { name: "removing jobs past sqlchat.job_retention", run: remove_expired_jobs, waiting: None, abandon: None },
    // ---- the interaction log (ops::log) ----
    Task {
        name: "writing sqlchat.log",
        run: ops::log::write,
        waiting: Some(ops::log::waiting),
        abandon: Some(ops::log::abandon),
    },
    Task {
        name: "removing sqlchat.log rows past sqlchat.log_retention",
        run: ops::log::remove_expired,
        waiting: None,
        abandon: None,
    },
];

/// Runs of a task with work waiting, in one call of `Schedule::run`; then the worker looks at
/// its jobs before it goes on.
const RUNS_WHILE_WAITING: usize = 16;

/// Asks for a worker visit in `database` within `after` (from a backend or a worker).
pub fn request_visit(database: pg_sys::Oid, after: Duration) {
    if crate::gucs::preloaded() {
        let at = unsafe { pg_sys::GetCurrentTimestamp() } + after.as_micros() as i64;
        super::shmem::visit_at(database, at);
    }
}

/// Work was handed over for `database` in shared memory (see the module comment).
pub fn work_handed_over(database: pg_sys::Oid) {
    if crate::gucs::preloaded() {
        super::shmem::wake_for_work(database, unsafe { pg_sys::GetCurrentTimestamp() });
    }
}

/// Whether work handed over in shared memory waits for `database`.
pub fn work_waiting(database: pg_sys::Oid) -> bool {
    TASKS.iter().filter_map(|t| t.waiting).any(|waiting| waiting(database).is_some())
}

/// Gives up the work handed over for `database` (sqlchat is not installed there).
pub fn abandon(database: pg_sys::Oid) {
    TASKS.iter().filter_map(|t| t.abandon).for_each(|abandon| abandon(database));
}

/// When each task is due next in this worker's database, and until when a task that failed
/// waits (even with work waiting).
pub struct Schedule {
    next: Vec<Option<Instant>>,
    failed_until: Vec<Option<Instant>>,
}

impl Schedule {
    /// Every task due now.
    pub fn new() -> Schedule {
        Schedule { next: vec![Some(Instant::now()); TASKS.len()], failed_until: vec![None; TASKS.len()] }
    }

    /// Runs the tasks that are due (all of them when `all`) or have work ready, each run in its
    /// own transaction. Returns whether work handed over in shared memory was waiting.
    pub fn run(&mut self, all: bool) -> bool {
        let mut worked = false;
        for i in 0..TASKS.len() {
            worked |= self.run_one(i, all);
        }
        worked
    }

    fn run_one(&mut self, i: usize, all: bool) -> bool {
        let (task, now) = (&TASKS[i], Instant::now());
        let database = unsafe { pg_sys::MyDatabaseId };
        let ready_in = || task.waiting.and_then(|w| w(database));
        let waiting = ready_in();
        let failed = self.failed_until[i].is_some_and(|t| t > now);
        let due = all || self.next[i].is_some_and(|t| t <= now) || (waiting == Some(Duration::ZERO) && !failed);
        if due {
            for runs in 1..=RUNS_WHILE_WAITING {
                let Some(after) = run_task(task) else {
                    self.failed_until[i] = Some(Instant::now() + RETRY_AFTER_FAILURE);
                    self.next[i] = self.failed_until[i];
                    return waiting.is_some();
                };
                self.failed_until[i] = None;
                self.next[i] = after;
                if ready_in() != Some(Duration::ZERO) {
                    break;
                }
                if runs == RUNS_WHILE_WAITING {
                    // Due again at once, after the worker has looked at its jobs.
                    self.next[i] = Some(Instant::now());
                }
            }
        }
        // Work still gathering: due when it is ready.
        if let Some(ready) = ready_in().map(|d| Instant::now() + d) {
            self.next[i] = Some(self.next[i].map_or(ready, |t| t.min(ready)));
        }
        waiting.is_some()
    }

    /// The earliest time a task is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.next.iter().flatten().min().copied()
    }
}

/// How long a task that failed waits before it runs again (work waiting or not).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Runs a task in a transaction of its own: when it wants to run again, or None when it failed
/// (a WARNING says why).
fn run_task(task: &Task) -> Option<Option<Instant>> {
    match super::worker::in_transaction(|| subxact::run(OnSuccess::Commit, task.run)) {
        Ok(after) => Some(after.map(|d| Instant::now() + d)),
        Err(f) => {
            pgrx::warning!("sqlchat: {} failed: {} (SQLSTATE {})", task.name, f.message, f.sqlstate);
            None
        }
    }
}

/// Jobs removed per statement, and statements per run: a long backlog is removed over a few runs.
const BATCH: i64 = 1000;
const BATCHES_PER_RUN: usize = 20;

fn remove_expired_jobs() -> Option<Duration> {
    let retention_s = gucs::job_retention_s() as f64;
    for _ in 0..BATCHES_PER_RUN {
        let (removed, next_s) =
            store::remove_expired("removing expired jobs", "sqlchat.job", "finished_at", retention_s, BATCH)?;
        if removed < BATCH {
            return next_s.map(|s| Duration::from_secs_f64(s.clamp(1.0, 86_400.0 * 365.0)));
        }
    }
    Some(Duration::from_secs(1))
}
