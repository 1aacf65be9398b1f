//! The launcher: one background worker per server, registered when the library is preloaded and
//! started once recovery is over (so on a standby only after promotion). Connected to no database
//! (it reads pg_database only), it starts database workers where jobs are queued or visits are
//! due, at most `sqlchat.max_workers` in all, round-robin between databases. Right after it
//! starts (server start, crash restart) it visits every database that allows connections, so that
//! jobs queued before a restart run and jobs a crash interrupted are queued again.

use super::shmem::{self, Reservation};
use crate::gucs;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::jobs::plan_starts;
use std::time::Duration;

const LAUNCHER: &str = "sqlchat launcher";
const WORKER: &str = "sqlchat worker";
/// Longest sleep with nothing due: settings reloads and lost wake-ups are noticed by then.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How often workers that were asked to start are looked at while they start.
const START_POLL: Duration = Duration::from_millis(500);

/// From _PG_init while shared_preload_libraries is processed.
pub fn register() {
    BackgroundWorkerBuilder::new(LAUNCHER)
        .set_type(LAUNCHER)
        .set_library("sqlchat")
        .set_function("sqlchat_launcher_main")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

unsafe extern "C-unwind" fn on_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    shmem::launcher_detach();
}

/// A worker asked to start and not attached yet.
struct Starting {
    reservation: Reservation,
    database: pg_sys::Oid,
    handle: *mut pg_sys::BackgroundWorkerHandle,
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sqlchat_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    unsafe { pg_sys::before_shmem_exit(Some(on_exit), pg_sys::Datum::from(0)) };
    shmem::launcher_attach(unsafe { pg_sys::MyLatch });
    let mut sweep = databases();
    let mut starting: Vec<Starting> = Vec::new();
    let mut sleep = Duration::ZERO;
    let mut warned = false;
    while BackgroundWorker::wait_latch(Some(sleep)) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        reap(&mut starting);
        if shmem::take_overflow() {
            sweep = databases();
        }
        sleep = launch(&mut sweep, &mut starting, &mut warned);
    }
    // Exit code 1: the postmaster starts the launcher again, unless the server is shutting down.
    unsafe { pg_sys::proc_exit(1) };
}

/// Starts the workers the demand calls for; how long to sleep before looking again.
fn launch(sweep: &mut Vec<pg_sys::Oid>, starting: &mut Vec<Starting>, warned: &mut bool) -> Duration {
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let max_workers = gucs::max_workers();
    // The sweep: a visit to as many databases at a time as there are free workers.
    let free = max_workers.saturating_sub(shmem::plan(now).workers);
    for database in sweep.drain(..free.min(sweep.len())) {
        shmem::visit_at(database, now);
    }
    let plan = shmem::plan(now);
    let first = if plan.databases.is_empty() { 0 } else { plan.rotate % plan.databases.len() };
    for i in plan_starts(&plan.demand, plan.workers, max_workers, first) {
        let database = plan.databases[i];
        let Some(reservation) = shmem::reserve_slot(database) else { break };
        match start_worker(reservation.slot) {
            Some(handle) => {
                *warned = false;
                starting.push(Starting { reservation, database, handle });
            }
            None => {
                shmem::start_failed(reservation, now);
                if !*warned {
                    pgrx::warning!(
                        "sqlchat: could not start a background worker; raise max_worker_processes \
                         (it must exceed sqlchat.max_workers plus every other background worker)"
                    );
                    *warned = true;
                }
            }
        }
    }
    let mut sleep = MAX_SLEEP;
    if let Some(due) = plan.next_due {
        sleep = sleep.min(Duration::from_micros(due.saturating_sub(now).max(1000) as u64));
    }
    if !starting.is_empty() || !sweep.is_empty() {
        sleep = sleep.min(START_POLL);
    }
    sleep
}

fn start_worker(slot: usize) -> Option<*mut pg_sys::BackgroundWorkerHandle> {
    let builder = BackgroundWorkerBuilder::new(WORKER)
        .set_type(WORKER)
        .set_library("sqlchat")
        .set_function("sqlchat_worker_main")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(slot)))
        .set_notify_pid(unsafe { pg_sys::MyProcPid });
    let mut worker: pg_sys::BackgroundWorker = (&builder).into();
    let mut handle: *mut pg_sys::BackgroundWorkerHandle = std::ptr::null_mut();
    let registered = unsafe { pg_sys::RegisterDynamicBackgroundWorker(&mut worker, &mut handle) };
    registered.then_some(handle)
}

/// Forgets workers that attached; frees the slots of those that stopped before attaching (and the
/// demand of a database that no longer exists).
fn reap(starting: &mut Vec<Starting>) {
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    starting.retain(|s| {
        if !shmem::is_starting(s.reservation) {
            unsafe { pg_sys::pfree(s.handle.cast()) };
            return false;
        }
        let mut pid = 0;
        let status = unsafe { pg_sys::GetBackgroundWorkerPid(s.handle, &mut pid) };
        if status != pg_sys::BgwHandleStatus::BGWH_STOPPED {
            return true;
        }
        shmem::start_failed(s.reservation, now);
        if !database_exists(s.database) {
            shmem::forget_database(s.database);
        }
        unsafe { pg_sys::pfree(s.handle.cast()) };
        false
    });
}

/// Databases a worker can connect to: every one that allows connections, templates aside (a
/// worker connected to a template would make CREATE DATABASE fail).
fn databases() -> Vec<pg_sys::Oid> {
    let mut found = Vec::new();
    unsafe {
        pg_sys::StartTransactionCommand();
        pg_sys::GetTransactionSnapshot();
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let db = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple);
            if (*db).datallowconn && !(*db).datistemplate {
                found.push((*db).oid);
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        pg_sys::CommitTransactionCommand();
    }
    found
}

fn database_exists(database: pg_sys::Oid) -> bool {
    unsafe {
        pg_sys::StartTransactionCommand();
        let exists = !pg_sys::get_database_name(database).is_null();
        pg_sys::CommitTransactionCommand();
        exists
    }
}
