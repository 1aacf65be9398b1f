//! What the launcher, the workers and the backends share in shared memory: one slot per worker,
//! the demand of each database (jobs nobody took yet, visits due), the backends waiting for a
//! job's end, and the job each worker runs with any cancel asked for it (read by the worker's
//! signal handler, so kept in atomics outside the lock). Hints only, except for the cancel of a
//! running job, which lives here alone (so that no user's transaction ever holds a lock on a
//! running job's row): a server restart forgets it, and a job interrupted by the restart runs
//! again. Everything else is rebuilt from the tables when the server restarts.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, pg_sys, PGRXSharedMemory, PgAtomic, PgLwLock};
use sqlchat_core::jobs::DatabaseDemand;
use std::sync::atomic::{AtomicI64, Ordering};

/// The most workers the server runs at once (the highest `sqlchat.max_workers`).
pub const MAX_WORKERS: usize = 32;
/// Databases with pending demand tracked at once; past that, the launcher visits every database.
const MAX_DATABASES: usize = 256;
/// Backends waiting in `sqlchat.result` that are woken at a job's end (others poll).
const MAX_WAITERS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Free,
    /// Reserved by the launcher; the worker has not attached yet.
    Starting,
    Idle,
    Busy,
}

#[derive(Clone, Copy)]
struct Slot {
    state: SlotState,
    database: pg_sys::Oid,
    pid: i32,
    /// Unique over server restarts: stamped on the jobs this worker runs, so that a job whose
    /// worker is gone is recognised whatever pids are reused.
    token: i64,
    latch: *mut pg_sys::Latch,
    /// Counts reservations of this slot, so that the launcher never mistakes a later worker's
    /// reservation for one it made earlier.
    generation: u64,
}

const FREE_SLOT: Slot = Slot {
    state: SlotState::Free,
    database: pg_sys::InvalidOid,
    pid: 0,
    token: 0,
    latch: std::ptr::null_mut(),
    generation: 0,
};

#[derive(Clone, Copy)]
struct Demand {
    /// InvalidOid: a free entry.
    database: pg_sys::Oid,
    queued: u32,
    /// When a worker should visit (TimestampTz); 0: no visit due.
    visit_at: i64,
    /// No worker is started before this (TimestampTz), after workers that failed.
    not_before: i64,
    failures: u32,
}

const FREE_DEMAND: Demand = Demand { database: pg_sys::InvalidOid, queued: 0, visit_at: 0, not_before: 0, failures: 0 };

#[derive(Clone, Copy)]
struct Waiter {
    /// The waiting backend's pid; 0: a free entry.
    pid: i32,
    job: i64,
    latch: *mut pg_sys::Latch,
}

const FREE_WAITER: Waiter = Waiter { pid: 0, job: 0, latch: std::ptr::null_mut() };

/// A job whose worker stopped after a cancel was asked for it: the next worker in its database
/// ends it cancelled instead of queueing it again.
#[derive(Clone, Copy)]
struct StoppedCancel {
    /// InvalidOid: a free entry.
    database: pg_sys::Oid,
    job: i64,
}

const FREE_STOPPED_CANCEL: StoppedCancel = StoppedCancel { database: pg_sys::InvalidOid, job: 0 };

pub struct Registry {
    launcher: *mut pg_sys::Latch,
    next_token: i64,
    /// Where the next round-robin of database starts.
    rotate: usize,
    /// A database's demand could not be recorded: the launcher visits every database.
    overflow: bool,
    slots: [Slot; MAX_WORKERS],
    demand: [Demand; MAX_DATABASES],
    waiters: [Waiter; MAX_WAITERS],
    stopped_cancels: [StoppedCancel; MAX_WORKERS],
}

unsafe impl PGRXSharedMemory for Registry {}

/// The job each worker runs (0: none) and the job a cancel was asked for.
pub struct Running {
    job: [AtomicI64; MAX_WORKERS],
    cancel: [AtomicI64; MAX_WORKERS],
}

unsafe impl PGRXSharedMemory for Running {}

static REGISTRY: PgLwLock<Registry> = unsafe { PgLwLock::new(c"sqlchat jobs") };
static RUNNING: PgAtomic<Running> = unsafe { PgAtomic::new(c"sqlchat running jobs") };

/// From _PG_init, only while shared_preload_libraries is processed.
#[allow(unexpected_cfgs)] // pg_shmem_init! tests features of other PostgreSQL versions
pub fn init() {
    pg_shmem_init!(
        REGISTRY = Registry {
            launcher: std::ptr::null_mut(),
            // Microseconds since 2000 at startup: tokens never repeat across restarts.
            next_token: unsafe { pg_sys::GetCurrentTimestamp() },
            rotate: 0,
            overflow: false,
            slots: [FREE_SLOT; MAX_WORKERS],
            demand: [FREE_DEMAND; MAX_DATABASES],
            waiters: [FREE_WAITER; MAX_WAITERS],
            stopped_cancels: [FREE_STOPPED_CANCEL; MAX_WORKERS],
        }
    );
    pg_shmem_init!(
        RUNNING = Running {
            job: [const { AtomicI64::new(0) }; MAX_WORKERS],
            cancel: [const { AtomicI64::new(0) }; MAX_WORKERS],
        }
    );
}

fn set_latch(latch: *mut pg_sys::Latch) {
    if !latch.is_null() {
        unsafe { pg_sys::SetLatch(latch) };
    }
}

impl Registry {
    fn demand_of(&mut self, database: pg_sys::Oid) -> Option<&mut Demand> {
        let found = self.demand.iter().position(|d| d.database == database);
        let i = found.or_else(|| self.demand.iter().position(|d| d.database == pg_sys::InvalidOid))?;
        if self.demand[i].database != database {
            self.demand[i] = Demand { database, ..FREE_DEMAND };
        }
        Some(&mut self.demand[i])
    }

    /// Frees a slot, keeping its generation.
    fn free_slot(&mut self, slot: usize) {
        self.slots[slot] = Slot { generation: self.slots[slot].generation, ..FREE_SLOT };
    }

    fn workers(&self) -> usize {
        self.slots.iter().filter(|s| s.state != SlotState::Free).count()
    }

    /// Frees a database's entry once nothing is pending there.
    fn tidy(&mut self, database: pg_sys::Oid) {
        if let Some(d) = self.demand.iter_mut().find(|d| d.database == database) {
            if d.queued == 0 && d.visit_at == 0 && d.failures == 0 {
                *d = FREE_DEMAND;
            }
        }
    }
}

// ---- backends -----------------------------------------------------------------------------------

/// After a commit that queued `count` jobs in `database`: wakes an idle worker there, and the
/// launcher (which starts workers while jobs outnumber the idle ones).
pub fn jobs_queued(database: pg_sys::Oid, count: u32) {
    let mut r = REGISTRY.exclusive();
    match r.demand_of(database) {
        Some(d) => d.queued = d.queued.saturating_add(count),
        None => r.overflow = true,
    }
    let idle = |s: &&Slot| s.state == SlotState::Idle;
    // An idle worker of the database takes them; without one, idle workers elsewhere are woken
    // to give way (`should_give_way`) when every slot is taken.
    let wake: Vec<*mut pg_sys::Latch> = match r.slots.iter().filter(idle).find(|s| s.database == database) {
        Some(s) => vec![s.latch],
        None => r.slots.iter().filter(idle).map(|s| s.latch).collect(),
    };
    let launcher = r.launcher;
    drop(r);
    wake.into_iter().for_each(set_latch);
    set_latch(launcher);
}

/// Asks for a worker visit in `database` at `at` (TimestampTz) or earlier; see `jobs::maintenance`.
pub fn visit_at(database: pg_sys::Oid, at: i64) {
    let mut r = REGISTRY.exclusive();
    match r.demand_of(database) {
        Some(d) => d.visit_at = if d.visit_at == 0 { at } else { d.visit_at.min(at) },
        None => r.overflow = true,
    }
    let idle = r.slots.iter().find(|s| s.state == SlotState::Idle && s.database == database).map(|s| s.latch);
    let launcher = r.launcher;
    drop(r);
    if let Some(latch) = idle {
        set_latch(latch);
    }
    set_latch(launcher);
}

/// How long handed-over work waits for the database's workers to end their jobs before another
/// worker is started for it (TimestampTz units).
const BUSY_WORKERS_GRACE_US: i64 = 1_000_000;

/// Work was handed over for `database` in shared memory (see `jobs::maintenance`): an idle
/// worker there is woken; while one is starting nothing more is needed; with none, a visit is
/// due now, and the launcher starts one; while all are busy with jobs, a visit is due shortly,
/// for which the launcher starts another if the jobs are still running then.
pub fn wake_for_work(database: pg_sys::Oid, now: i64) {
    let r = REGISTRY.share();
    let ours = || r.slots.iter().filter(|s| s.state != SlotState::Free && s.database == database);
    let idle = ours().find(|s| s.state == SlotState::Idle).map(|s| s.latch);
    let starting = ours().any(|s| s.state == SlotState::Starting);
    let any = ours().next().is_some();
    drop(r);
    match idle {
        Some(latch) => set_latch(latch),
        None if starting => {}
        None if !any => visit_at(database, now),
        None => visit_at(database, now + BUSY_WORKERS_GRACE_US),
    }
}

/// After a commit that asked to cancel a running job of `database`: the worker running it gets
/// SIGUSR2, and its handler cancels the job if it is still the one it runs.
pub fn cancel_running(database: pg_sys::Oid, job: i64) {
    let running = RUNNING.get();
    let r = REGISTRY.share();
    for (i, s) in r.slots.iter().enumerate() {
        // Job ids are numbered in each database on its own.
        if s.state == SlotState::Busy && s.database == database && running.job[i].load(Ordering::SeqCst) == job {
            running.cancel[i].store(job, Ordering::SeqCst);
            unsafe { libc::kill(s.pid, libc::SIGUSR2) };
        }
    }
}

/// Pids of the workers connected to `database`, each sent SIGTERM (DROP DATABASE is coming).
pub fn terminate_database_workers(database: pg_sys::Oid) -> Vec<i32> {
    let r = REGISTRY.share();
    let pids: Vec<i32> = r
        .slots
        .iter()
        .filter(|s| s.database == database && s.pid != 0 && s.state != SlotState::Free)
        .map(|s| s.pid)
        .collect();
    drop(r);
    for pid in &pids {
        unsafe { libc::kill(*pid, libc::SIGTERM) };
    }
    pids
}

/// Whether any of `pids` still holds a worker slot.
pub fn any_worker_left(pids: &[i32]) -> bool {
    REGISTRY.share().slots.iter().any(|s| s.state != SlotState::Free && pids.contains(&s.pid))
}

/// A backend waiting for a job's end, woken by the worker that ends it. Dropped (also when an
/// ERROR unwinds) it stops waiting.
pub struct Waiting {
    pid: i32,
}

impl Waiting {
    /// None when every entry is taken: the caller then polls.
    pub fn register(job: i64) -> Option<Waiting> {
        let pid = unsafe { pg_sys::MyProcPid };
        let mut r = REGISTRY.exclusive();
        let i = r.waiters.iter().position(|w| w.pid == pid).or_else(|| r.waiters.iter().position(|w| w.pid == 0))?;
        r.waiters[i] = Waiter { pid, job, latch: unsafe { pg_sys::MyLatch } };
        Some(Waiting { pid })
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut r = REGISTRY.exclusive();
        for w in r.waiters.iter_mut().filter(|w| w.pid == self.pid) {
            *w = FREE_WAITER;
        }
    }
}

/// Wakes the backends waiting for `job`.
pub fn job_ended(job: i64) {
    let r = REGISTRY.share();
    let latches: Vec<_> = r.waiters.iter().filter(|w| w.pid != 0 && w.job == job).map(|w| w.latch).collect();
    drop(r);
    latches.into_iter().for_each(set_latch);
}

// ---- the launcher -------------------------------------------------------------------------------

pub fn launcher_attach(latch: *mut pg_sys::Latch) {
    REGISTRY.exclusive().launcher = latch;
}

pub fn launcher_detach() {
    REGISTRY.exclusive().launcher = std::ptr::null_mut();
}

/// Whether some demand was lost since the last call (the launcher then visits every database).
pub fn take_overflow() -> bool {
    std::mem::take(&mut REGISTRY.exclusive().overflow)
}

/// Databases with demand, what the planner needs to know of each, the workers running, the
/// next round-robin start, and the earliest future time something becomes due (TimestampTz).
pub struct Plan {
    pub databases: Vec<pg_sys::Oid>,
    pub demand: Vec<DatabaseDemand>,
    pub workers: usize,
    pub rotate: usize,
    pub next_due: Option<i64>,
}

pub fn plan(now: i64) -> Plan {
    let r = REGISTRY.share();
    let mut plan = Plan { databases: vec![], demand: vec![], workers: r.workers(), rotate: r.rotate, next_due: None };
    for d in r.demand.iter().filter(|d| d.database != pg_sys::InvalidOid) {
        let mut due = d.visit_at != 0 && d.visit_at <= now;
        let mut queued = d.queued;
        if d.not_before > now {
            // Backing off after failed workers: nothing starts before then.
            plan.next_due = Some(plan.next_due.map_or(d.not_before, |t| t.min(d.not_before)));
            due = false;
            queued = 0;
        } else if d.visit_at > now {
            plan.next_due = Some(plan.next_due.map_or(d.visit_at, |t| t.min(d.visit_at)));
        }
        let ours = r.slots.iter().filter(|s| s.state != SlotState::Free && s.database == d.database);
        let (workers, available) = ours
            .fold((0, 0), |(w, a), s| (w + 1, a + u32::from(matches!(s.state, SlotState::Starting | SlotState::Idle))));
        plan.databases.push(d.database);
        plan.demand.push(DatabaseDemand { queued, visit_due: due, workers, available });
    }
    plan
}

/// A slot reserved for a worker about to start: its index and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub slot: usize,
    generation: u64,
}

/// Reserves a slot for a worker about to start in `database`; None when none is free.
pub fn reserve_slot(database: pg_sys::Oid) -> Option<Reservation> {
    let mut r = REGISTRY.exclusive();
    let slot = r.slots.iter().position(|s| s.state == SlotState::Free)?;
    let generation = r.slots[slot].generation.wrapping_add(1);
    r.slots[slot] = Slot { state: SlotState::Starting, database, generation, ..FREE_SLOT };
    r.rotate = r.rotate.wrapping_add(1);
    Some(Reservation { slot, generation })
}

/// Whether a reservation still waits for its worker to attach.
pub fn is_starting(reservation: Reservation) -> bool {
    let s = REGISTRY.share().slots[reservation.slot];
    s.state == SlotState::Starting && s.generation == reservation.generation
}

/// A reservation whose worker never attached (it could not start, or ended before connecting).
pub fn start_failed(reservation: Reservation, now: i64) {
    let mut r = REGISTRY.exclusive();
    let slot = reservation.slot;
    if r.slots[slot].state != SlotState::Starting || r.slots[slot].generation != reservation.generation {
        return;
    }
    let database = r.slots[slot].database;
    r.free_slot(slot);
    if let Some(d) = r.demand_of(database) {
        d.failures += 1;
        d.not_before = now + sqlchat_core::jobs::retry_delay(d.failures).as_micros() as i64;
    }
}

/// Forgets a database that no longer exists.
pub fn forget_database(database: pg_sys::Oid) {
    let mut r = REGISTRY.exclusive();
    if let Some(d) = r.demand.iter_mut().find(|d| d.database == database) {
        *d = FREE_DEMAND;
    }
    for c in r.stopped_cancels.iter_mut().filter(|c| c.database == database) {
        *c = FREE_STOPPED_CANCEL;
    }
}

/// The database a slot was reserved for.
pub fn slot_database(slot: usize) -> pg_sys::Oid {
    REGISTRY.share().slots.get(slot).map_or(pg_sys::InvalidOid, |s| s.database)
}

// ---- workers ------------------------------------------------------------------------------------

/// A worker takes its reserved slot; returns its token, or None when the slot is not reserved for
/// this database (the worker then ends).
pub fn worker_attach(slot: usize, database: pg_sys::Oid) -> Option<i64> {
    let mut r = REGISTRY.exclusive();
    let s = r.slots.get(slot).copied()?;
    if s.state != SlotState::Starting || s.database != database {
        return None;
    }
    let token = r.next_token;
    r.next_token += 1;
    r.slots[slot] = Slot {
        state: SlotState::Idle,
        database,
        pid: unsafe { pg_sys::MyProcPid },
        token,
        latch: unsafe { pg_sys::MyLatch },
        generation: s.generation,
    };
    Some(token)
}

/// A worker leaves its slot (from its exit callback). A worker that ended with an error makes the
/// launcher back off before starting another in its database; one that ended during a job makes
/// a visit due there, so that the job is queued again (or failed) soon.
pub fn worker_detach(slot: usize, failed: bool, now: i64) {
    let running = RUNNING.get();
    let job = running.job[slot].swap(0, Ordering::SeqCst);
    let had_job = job != 0;
    let cancel_asked = had_job && running.cancel[slot].swap(0, Ordering::SeqCst) == job;
    let mut r = REGISTRY.exclusive();
    if r.slots[slot].pid != unsafe { pg_sys::MyProcPid } {
        return;
    }
    let database = r.slots[slot].database;
    r.free_slot(slot);
    if cancel_asked {
        // No room: the job is queued again, as if the cancel had come after the worker stopped.
        if let Some(free) = r.stopped_cancels.iter_mut().find(|c| c.database == pg_sys::InvalidOid) {
            *free = StoppedCancel { database, job };
        }
    }
    if let Some(d) = r.demand_of(database) {
        if failed {
            d.failures += 1;
            d.not_before = now + sqlchat_core::jobs::retry_delay(d.failures).as_micros() as i64;
        } else {
            d.failures = 0;
            d.not_before = 0;
        }
        if had_job {
            d.visit_at = now;
        }
    }
    let launcher = r.launcher;
    drop(r);
    set_latch(launcher);
}

/// The worker in `slot` runs `job` (before its claim commits, so a cancel always finds it).
pub fn set_busy(slot: usize, job: i64) {
    let running = RUNNING.get();
    running.cancel[slot].store(0, Ordering::SeqCst);
    running.job[slot].store(job, Ordering::SeqCst);
    REGISTRY.exclusive().slots[slot].state = SlotState::Busy;
}

/// The job in `slot` has run: its signal handler cancels nothing from now on. Returns whether a
/// cancel was asked for it.
pub fn job_done(slot: usize) -> bool {
    let running = RUNNING.get();
    let job = running.job[slot].swap(0, Ordering::SeqCst);
    job != 0 && running.cancel[slot].swap(0, Ordering::SeqCst) == job
}

pub fn set_idle(slot: usize) {
    REGISTRY.exclusive().slots[slot].state = SlotState::Idle;
}

/// From the worker's SIGUSR2 handler: whether the job it runs now is the one a cancel was asked
/// for. Atomics only: safe in a signal handler.
pub fn cancel_asked(slot: usize) -> bool {
    let running = RUNNING.get();
    let job = running.job[slot].load(Ordering::SeqCst);
    job != 0 && running.cancel[slot].load(Ordering::SeqCst) == job
}

/// What a worker found after a claim: `remaining` jobs still queued (bounded count).
pub fn set_queued(database: pg_sys::Oid, remaining: u32) {
    let mut r = REGISTRY.exclusive();
    if let Some(d) = r.demand_of(database) {
        d.queued = remaining;
    }
    r.tidy(database);
}

/// Takes a due visit of `database` (the worker that starts there does its maintenance now).
pub fn take_visit(database: pg_sys::Oid, now: i64) -> bool {
    let mut r = REGISTRY.exclusive();
    let Some(d) = r.demand.iter_mut().find(|d| d.database == database) else { return false };
    let due = d.visit_at != 0 && d.visit_at <= now;
    if due {
        d.visit_at = 0;
    }
    r.tidy(database);
    due
}

/// Jobs of `database` whose worker stopped after a cancel was asked for them.
pub fn stopped_cancels(database: pg_sys::Oid) -> Vec<i64> {
    REGISTRY.share().stopped_cancels.iter().filter(|c| c.database == database).map(|c| c.job).collect()
}

/// Forgets `jobs` of `database`, given by `stopped_cancels` to a recovery that has run.
pub fn forget_stopped_cancels(database: pg_sys::Oid, jobs: &[i64]) {
    let mut r = REGISTRY.exclusive();
    for c in r.stopped_cancels.iter_mut().filter(|c| c.database == database && jobs.contains(&c.job)) {
        *c = FREE_STOPPED_CANCEL;
    }
}

/// Tokens of the workers alive now, whatever their database.
pub fn live_tokens() -> Vec<i64> {
    REGISTRY.share().slots.iter().filter(|s| s.state != SlotState::Free && s.token != 0).map(|s| s.token).collect()
}

/// Whether more workers run than `max_workers` allows (it was lowered, or 0 pauses them all).
pub fn over_limit(max_workers: usize) -> bool {
    REGISTRY.share().workers() > max_workers
}

/// After a job: whether this worker should end to let a starved database have its slot.
pub fn should_yield(max_workers: usize, database: pg_sys::Oid) -> bool {
    let r = REGISTRY.share();
    let starved = r.demand.iter().any(|d| {
        d.database != pg_sys::InvalidOid
            && d.database != database
            && d.queued > 0
            && !r.slots.iter().any(|s| s.state != SlotState::Free && s.database == d.database)
    });
    sqlchat_core::jobs::should_yield(r.workers(), max_workers, starved)
}

/// A worker with nothing queued in its database: whether it should end so that jobs waiting in
/// another database get its slot (every slot is taken).
pub fn should_give_way(max_workers: usize, database: pg_sys::Oid) -> bool {
    let r = REGISTRY.share();
    let queued = |d: &Demand| d.database != pg_sys::InvalidOid && d.queued > 0;
    let own = r.demand.iter().any(|d| d.database == database && queued(d));
    let others = r.demand.iter().any(|d| d.database != database && queued(d));
    !own && sqlchat_core::jobs::should_yield(r.workers(), max_workers, others)
}

/// A worker leaves its slot before it ends: when yielding, at once; else unless jobs were queued
/// in its database since it last looked (then it stays and looks again). Returns whether it left.
pub fn leave(slot: usize, database: pg_sys::Oid, yielding: bool) -> bool {
    let mut r = REGISTRY.exclusive();
    if !yielding && r.demand.iter().any(|d| d.database == database && d.queued > 0) {
        return false;
    }
    r.free_slot(slot);
    let launcher = r.launcher;
    drop(r);
    set_latch(launcher);
    true
}
