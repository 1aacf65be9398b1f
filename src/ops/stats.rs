//! The statistics of the current database and role in shared memory.

use super::shmem;
use crate::gucs;
use pgrx::pg_sys;
use sqlchat_core::ops::stats::Counters;

/// Applies `f` to the counters of the current database and role (nothing when the library was
/// not preloaded or `sqlchat.track_stats` is off).
pub fn add(f: impl FnOnce(&mut Counters)) {
    if !gucs::track_stats() {
        return;
    }
    let (database, role) = unsafe { (pg_sys::MyDatabaseId.to_u32(), pg_sys::GetUserId().to_u32()) };
    shmem::with(|s| f(s.counters(database, role)));
}

/// The counters of one database (oid) and role (oid).
pub type Slot = (u32, u32, Counters);

/// Every used slot, the overflow row last as (0, 0) when it counted anything, and when the
/// statistics were last reset.
pub fn snapshot() -> Option<(Vec<Slot>, i64)> {
    shmem::with(|s| {
        let mut rows: Vec<Slot> = s
            .stats
            .iter()
            .filter(|slot| slot.used != 0)
            .map(|slot| (slot.database, slot.role, slot.counters))
            .collect();
        if s.overflow.counters != Counters::default() {
            rows.push((0, 0, s.overflow.counters));
        }
        (rows, s.stats_reset)
    })
}
