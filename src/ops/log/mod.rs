//! The interaction log, `sqlchat.log`: one row per ask, answered or not, written outside the
//! caller's transaction so that a ROLLBACK or an ERROR never loses it.
//!
//! When an ask ends, `hand_over` masks the record's texts, turns it into a JSON row and puts it
//! in a ring in shared memory (ring.rs); a full ring drops the row and counts it
//! (`sqlchat.stats.log_records_dropped`), so an ask never waits. The first row of a batch wakes
//! the database's background worker (or the launcher starts one); once rows have gathered for a
//! moment (`GATHER_MS`, or `GATHER_BYTES` of them), its maintenance task `write` claims them and
//! inserts them in batches, each in a transaction of its own, as the table's owner. A worker that
//! stops while writing gives its rows back (the next one writes them); rows still waiting at a
//! clean shutdown are saved and written after the next start.
//!
//! Not written: asks on a hot standby (nothing can be written there; the statistics still count
//! them, and a NOTICE says so once per session), asks in sessions without shared memory (not
//! preloaded: the NOTICE of `ops::warn_once_without_shared_memory`), and with
//! `sqlchat.log_asks = off`.

mod ring;

use super::stats;
use crate::gucs;
use crate::jobs::maintenance;
use crate::store::{self, Caller};
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::ops::log::{redact, wakes_worker, write_in, LogRow, Origin, STALE_AFTER_S};
use sqlchat_core::ops::record::AskRecord;
use sqlchat_core::ops::ring::Owner;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

pub use ring::{available, save as save_ring, size as shmem_size, startup as shmem_startup};

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const UNIX_TO_PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Bytes of rows one insert takes at most.
const BATCH_BYTES: usize = 512 * 1024;
/// Rows removed per statement by the retention task, and statements per run.
const REMOVE_BATCH: i64 = 1000;
const REMOVE_BATCHES_PER_RUN: usize = 20;

/// Every text a row keeps from the ask (question, SQL, session, error message) goes through
/// here before it leaves the backend: secrets are scrubbed. Values of private columns never get
/// this far: a row keeps no result and no answer, and the core masks the values an error of a
/// statement that read a private column may quote (`pipeline::without_row_values`) before the
/// error reaches the repair prompt, the caller, or the record. Any further masking of a row's texts goes here.
fn mask(text: &str) -> String {
    crate::error::secrets().scrub(text)
}

/// Hands the record of an ask that just ended to the database's worker (see the module comment).
/// `asked_at` is when the ask began (TimestampTz).
pub fn hand_over(caller: &Caller, asked_at: i64, mut record: AskRecord) {
    if !gucs::log_asks() || !available() {
        return;
    }
    if unsafe { pg_sys::RecoveryInProgress() } {
        notice_once_on_standby();
        return;
    }
    redact(&mut record, mask);
    let session_role =
        unsafe { std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), false)) };
    let session_role = session_role.to_string_lossy();
    let origin = Origin {
        asked_at_us: asked_at.saturating_add(UNIX_TO_PG_EPOCH_US),
        role_oid: caller.oid.to_u32(),
        role_name: &caller.name,
        backend_pid: unsafe { pg_sys::MyProcPid },
        session_role: &session_role,
    };
    let row = LogRow::new(origin, &record).to_json();
    let database = unsafe { pg_sys::MyDatabaseId };
    let owner = Owner { database: database.to_u32(), role: caller.oid.to_u32() };
    let now = now();
    match ring::push(owner, now, &row) {
        Ok(pending) if wakes_worker(pending, row.len() as u64, now) => maintenance::work_handed_over(database),
        Ok(_) => {}
        Err(_) => stats::add(|c| c.add_log_dropped(1)),
    }
}

thread_local! {
    static TOLD_ON_STANDBY: Cell<bool> = const { Cell::new(false) };
}

fn notice_once_on_standby() {
    if TOLD_ON_STANDBY.with(|t| t.replace(true)) {
        return;
    }
    pgrx::notice!(
        "sqlchat: asks on a hot standby are not written to sqlchat.log (nothing can be written here); \
         sqlchat.stats still counts them"
    );
}

fn now() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

// ---- the worker's side --------------------------------------------------------------------------

/// Whether rows wait in the ring for `database`, and in how long they are to be written (they
/// gather into batches for a moment, see `write_in`).
pub fn waiting(database: pg_sys::Oid) -> Option<Duration> {
    ring::pending(database.to_u32()).map(|p| write_in(p, now()))
}

/// Gives up the rows waiting for `database` (sqlchat is not installed there); they count as dropped.
pub fn abandon(database: pg_sys::Oid) {
    count_dropped(&ring::discard(database.to_u32()));
}

/// This worker's claimed rows, given back to the ring unless they were written: an ERROR or the
/// worker's exit between claiming and writing never loses them.
struct Claim {
    pid: i32,
    done: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.done {
            ring::release(self.pid);
        }
    }
}

static EXIT_CALLBACK: AtomicBool = AtomicBool::new(false);

unsafe extern "C-unwind" fn release_at_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    // Runs before the transaction of a FATAL is aborted, so rows it was writing are not in the
    // table; the next worker writes them (a visit, since no new row may come to wake one).
    let database = unsafe { pg_sys::MyDatabaseId };
    if ring::release(unsafe { pg_sys::MyProcPid }) > 0 {
        maintenance::request_visit(database, Duration::ZERO);
    }
}

/// The maintenance task that writes the rows handed over for this database: one batch of them,
/// in the worker's transaction (the worker runs it again while rows are left).
pub fn write() -> Option<Duration> {
    if !EXIT_CALLBACK.swap(true, Ordering::Relaxed) {
        unsafe { pg_sys::before_shmem_exit(Some(release_at_exit), pg_sys::Datum::from(0)) };
    }
    let database = unsafe { pg_sys::MyDatabaseId };
    let pid = unsafe { pg_sys::MyProcPid };
    let mut claim = Claim { pid, done: false };
    let rows = ring::claim(database.to_u32(), pid, BATCH_BYTES);
    if !rows.is_empty() {
        let payloads: Vec<Vec<u8>> = rows.iter().map(|(_, p)| p.clone()).collect();
        if store::log::insert(&payloads).is_none() {
            insert_one_by_one(&rows);
        }
        ring::finish(pid);
    }
    claim.done = true;
    look_after_other_databases(database);
    None
}

/// After a batch failed: each row alone, so that one bad row costs only itself. Without the
/// table (the extension was dropped, or not updated), every row is dropped at once.
fn insert_one_by_one(rows: &[(Owner, Vec<u8>)]) {
    if !store::has_own_table("sqlchat.log") {
        count_dropped(&rows.iter().map(|(o, _)| *o).collect::<Vec<_>>());
        return;
    }
    let failed: Vec<Owner> = rows
        .iter()
        .filter(|(_, row)| store::log::insert(std::slice::from_ref(row)).is_none())
        .map(|(o, _)| *o)
        .collect();
    count_dropped(&failed);
}

fn count_dropped(owners: &[Owner]) {
    if owners.is_empty() || !gucs::track_stats() {
        return;
    }
    super::shmem::with(|s| {
        for o in owners {
            s.counters(o.database, o.role).add_log_dropped(1);
        }
    });
}

/// When this worker last looked at other databases' rows (TimestampTz).
static LAST_LOOK: AtomicI64 = AtomicI64::new(0);

/// Rows of another database that waited long: that database may be gone (they are dropped) or
/// its wake-up lost (it is woken again). At most once per `STALE_AFTER_S` in this worker.
fn look_after_other_databases(database: pg_sys::Oid) {
    let now = now();
    let stale_us = STALE_AFTER_S * 1_000_000;
    if now - LAST_LOOK.load(Ordering::Relaxed) < stale_us {
        return;
    }
    LAST_LOOK.store(now, Ordering::Relaxed);
    let Some((owner, at)) = ring::oldest_ready() else { return };
    if owner.database == database.to_u32() || now - at < stale_us {
        return;
    }
    let other = pg_sys::Oid::from(owner.database);
    if unsafe { pg_sys::get_database_name(other) }.is_null() {
        abandon(other);
    } else {
        maintenance::work_handed_over(other);
    }
}

/// The maintenance task that removes rows past `sqlchat.log_retention` (0: none are removed).
pub fn remove_expired() -> Option<Duration> {
    let retention_s = gucs::log_retention_s();
    if retention_s == 0 || !store::has_own_table("sqlchat.log") {
        return None;
    }
    for _ in 0..REMOVE_BATCHES_PER_RUN {
        let (removed, next_s) = store::remove_expired(
            "removing sqlchat.log rows past sqlchat.log_retention",
            "sqlchat.log",
            "asked_at",
            retention_s as f64,
            REMOVE_BATCH,
        )?;
        if removed < REMOVE_BATCH {
            return next_s.map(|s| Duration::from_secs_f64(s.clamp(1.0, 86_400.0 * 365.0)));
        }
    }
    Some(Duration::from_secs(1))
}

// ---- reading ------------------------------------------------------------------------------------

/// Whether the current role reads every row of `sqlchat.log` (the table's row-level security
/// policy asks once per query that meets a row): superusers and members of
/// `sqlchat.auditor_role`; others read their own rows. Without shared_preload_libraries nothing
/// new is logged: the session's NOTICE says so (once, as for asks).
#[pg_extern(stable, parallel_safe)]
fn log_reads_all() -> bool {
    super::warn_once_without_shared_memory();
    unsafe {
        if pg_sys::superuser() {
            return true;
        }
        let Some(name) = gucs::auditor_role().and_then(|n| std::ffi::CString::new(n).ok()) else { return false };
        let auditor = pg_sys::get_role_oid(name.as_ptr(), true);
        auditor != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), auditor)
    }
}

// The table, its indexes and its row-level security policy (which calls the function above).
extension_sql_file!("../../../sql/log.sql", name = "log", requires = [log_reads_all]);
