//! Work a database's worker does besides jobs. Each task runs in a transaction of its own, as the
//! worker (the bootstrap superuser; store code switches to the tables' owner), with its ERRORs
//! caught and logged: when the worker starts in the database, when the task is due again, when a
//! visit is requested, and once more before the worker ends, so that the launcher can come back
//! when the earliest task is due.
//!
//! Adding work (e.g. writing records handed over in shared memory into a table, or removing old
//! rows of another table): add a `Task` to `TASKS`, and call `request_visit` from whatever hands
//! it work; a worker already connected to that database is woken, else the launcher starts one.

use crate::gucs;
use crate::store::job;
use crate::subxact::{self, OnSuccess};
use pgrx::pg_sys;
use std::time::{Duration, Instant};

pub struct Task {
    pub name: &'static str,
    /// Does the task's work in the current database; returns when it wants to run again there
    /// (None: only at the next visit).
    pub run: fn() -> Option<Duration>,
}

pub const TASKS: &[Task] = &[Task { name: "removing jobs past sqlchat.job_retention", run: remove_expired_jobs }];

/// Asks for a worker visit in `database` within `after` (from a backend or a worker).
pub fn request_visit(database: pg_sys::Oid, after: Duration) {
    if crate::gucs::preloaded() {
        let at = unsafe { pg_sys::GetCurrentTimestamp() } + after.as_micros() as i64;
        super::shmem::visit_at(database, at);
    }
}

/// When each task is due next in this worker's database.
pub struct Schedule {
    next: Vec<Option<Instant>>,
}

impl Schedule {
    /// Every task due now.
    pub fn new() -> Schedule {
        Schedule { next: vec![Some(Instant::now()); TASKS.len()] }
    }

    /// Runs the tasks that are due (all of them when `all`), each in its own transaction.
    pub fn run(&mut self, all: bool) {
        let now = Instant::now();
        for (task, next) in TASKS.iter().zip(self.next.iter_mut()) {
            if !all && next.is_none_or(|t| t > now) {
                continue;
            }
            let outcome = super::worker::in_transaction(|| subxact::run(OnSuccess::Commit, task.run));
            *next = match outcome {
                Ok(after) => after.map(|d| Instant::now() + d),
                Err(f) => {
                    pgrx::warning!("sqlchat: {} failed: {} (SQLSTATE {})", task.name, f.message, f.sqlstate);
                    Some(Instant::now() + Duration::from_secs(60))
                }
            };
        }
    }

    /// The earliest time a task is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.next.iter().flatten().min().copied()
    }
}

/// Jobs removed per statement, and statements per run: a long backlog is removed over a few runs.
const BATCH: i64 = 1000;
const BATCHES_PER_RUN: usize = 20;

fn remove_expired_jobs() -> Option<Duration> {
    let retention_s = gucs::job_retention_s() as f64;
    for _ in 0..BATCHES_PER_RUN {
        let (removed, next_s) = job::remove_expired(retention_s, BATCH)?;
        if removed < BATCH {
            return next_s.map(|s| Duration::from_secs_f64(s.clamp(1.0, 86_400.0 * 365.0)));
        }
    }
    Some(Duration::from_secs(1))
}
