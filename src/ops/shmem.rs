//! sqlchat's shared memory: statistics per database and role, and quota usage, in one fixed-size
//! block behind one LWLock; and the interaction log's ring (`ops::log`) behind a second one. Requested from `shmem_request_hook` (PostgreSQL 15) when the library
//! is preloaded; saved to `pg_stat/sqlchat.stat` when the server shuts down cleanly and read back
//! at the next start (after a crash the counters start from zero, as PostgreSQL's own statistics
//! do).
//!
//! Bounds: `STATS_SLOTS` database/role pairs; asks of further pairs are counted together in one
//! overflow row (database and role NULL) until `sqlchat.stats_reset()`. `QUOTA_SLOTS` roles with a
//! quota in use at once; entries whose hour and day are both over are reused.

use pgrx::pg_sys;
use sqlchat_core::ops::quota::Usage;
use sqlchat_core::ops::stats::Counters;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};

pub const STATS_SLOTS: usize = 1024;
pub const QUOTA_SLOTS: usize = 1024;
const NAME: &CStr = c"sqlchat";
const FILE: &CStr = c"pg_stat/sqlchat.stat";
const FILE_TMP: &CStr = c"pg_stat/sqlchat.stat.tmp";
const MAGIC: u64 = 0x5351_4c43_4841_5402; // "SQLCHAT" and a format version

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StatsSlot {
    pub used: u32,
    pub database: u32,
    pub role: u32,
    pub counters: Counters,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct QuotaSlot {
    pub used: u32,
    pub database: u32,
    pub role: u32,
    pub usage: Usage,
}

/// All of it; all-zero bytes are a valid empty state.
#[repr(C)]
pub struct State {
    magic: u64,
    /// Bumped when a quota definition changes (after its transaction commits): backends reload.
    pub quota_generation: AtomicU64,
    /// When the statistics were last reset (TimestampTz; 0: never).
    pub stats_reset: i64,
    pub overflow: StatsSlot,
    pub stats: [StatsSlot; STATS_SLOTS],
    pub quotas: [QuotaSlot; QUOTA_SLOTS],
}

static mut STATE: *mut State = std::ptr::null_mut();
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();
static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// Installs the hooks; only while shared_preload_libraries is being processed.
pub fn init() {
    unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress {
            return;
        }
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(startup);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn request() {
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        pg_sys::RequestAddinShmemSpace(std::mem::size_of::<State>());
        pg_sys::RequestAddinShmemSpace(super::log::shmem_size());
        pg_sys::RequestNamedLWLockTranche(NAME.as_ptr(), 2);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn startup() {
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock; // AddinShmemInitLock
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let state = pg_sys::ShmemInitStruct(NAME.as_ptr(), std::mem::size_of::<State>(), &mut found).cast::<State>();
        if !found {
            std::ptr::write_bytes(state.cast::<u8>(), 0, std::mem::size_of::<State>());
            load(state);
            (*state).magic = MAGIC;
        }
        let locks = pg_sys::GetNamedLWLockTranche(NAME.as_ptr());
        LOCK = &raw mut (*locks).lock;
        STATE = state;
        super::log::shmem_startup(&raw mut (*locks.add(1)).lock);
        pg_sys::LWLockRelease(init_lock);
        if !pg_sys::IsUnderPostmaster {
            pg_sys::on_shmem_exit(Some(save), pg_sys::Datum::from(0usize));
        }
    }
}

/// Whether the block exists in this process (the library was preloaded).
pub fn available() -> bool {
    unsafe { !STATE.is_null() }
}

/// Runs `f` on the state under the lock (exclusive); None when there is no shared memory. `f`
/// must not raise an ERROR.
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    unsafe {
        if STATE.is_null() {
            return None;
        }
        pg_sys::LWLockAcquire(LOCK, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let r = f(&mut *STATE);
        pg_sys::LWLockRelease(LOCK);
        Some(r)
    }
}

pub fn quota_generation() -> u64 {
    unsafe { STATE.as_ref().map_or(0, |s| s.quota_generation.load(Ordering::Acquire)) }
}

pub fn bump_quota_generation() {
    unsafe {
        if let Some(s) = STATE.as_ref() {
            s.quota_generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl State {
    /// The counters of a database and role: found, else a free slot claimed, else the overflow.
    /// Open addressing over the fixed table; slots are only freed by a reset.
    pub fn counters(&mut self, database: u32, role: u32) -> &mut Counters {
        let start = slot_hash(database, role) % STATS_SLOTS;
        for probe in 0..STATS_SLOTS {
            let i = (start + probe) % STATS_SLOTS;
            let slot = &self.stats[i];
            if slot.used == 0 {
                self.stats[i] = StatsSlot { used: 1, database, role, counters: Counters::default() };
                return &mut self.stats[i].counters;
            }
            if slot.database == database && slot.role == role {
                return &mut self.stats[i].counters;
            }
        }
        &mut self.overflow.counters
    }

    pub fn reset_stats(&mut self, now: i64) {
        for slot in self.stats.iter_mut() {
            slot.used = 0;
            slot.counters = Counters::default();
        }
        self.overflow.counters = Counters::default();
        self.stats_reset = now;
    }

    /// The quota usage of a database and role; a stale or free slot is claimed for it. None when
    /// every slot holds a live window of another role.
    pub fn quota_usage(&mut self, database: u32, role: u32, now_s: u64) -> Option<&mut Usage> {
        let mut free = None;
        for (i, slot) in self.quotas.iter().enumerate() {
            if slot.used != 0 && slot.database == database && slot.role == role {
                return Some(&mut self.quotas[i].usage);
            }
            if free.is_none() && (slot.used == 0 || slot.usage.is_stale(now_s)) {
                free = Some(i);
            }
        }
        let i = free?;
        self.quotas[i] = QuotaSlot { used: 1, database, role, usage: Usage::default() };
        Some(&mut self.quotas[i].usage)
    }

    /// The quota usage of a database and role, if it has any.
    pub fn peek_quota_usage(&self, database: u32, role: u32) -> Option<Usage> {
        self.quotas.iter().find(|s| s.used != 0 && s.database == database && s.role == role).map(|s| s.usage)
    }
}

fn slot_hash(database: u32, role: u32) -> usize {
    let x = (u64::from(database) << 32 | u64::from(role)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 32) as usize
}

/// Reads the file a clean shutdown saved, when it matches this build's layout, and removes it
/// (so that a crash later starts from zero rather than from stale figures).
unsafe fn load(state: *mut State) {
    let path = unsafe { data_path(FILE) };
    let Some(path) = path else { return };
    if let Ok(bytes) = std::fs::read(&path) {
        let size = std::mem::size_of::<State>();
        if bytes.len() == size && bytes[..8] == MAGIC.to_ne_bytes() {
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), state.cast::<u8>(), size) };
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// on_shmem_exit in the postmaster: saves the block on a clean shutdown only.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn save(code: i32, _arg: pg_sys::Datum) {
    unsafe {
        if code != 0 || STATE.is_null() {
            return;
        }
        super::log::save_ring();
        let (Some(tmp), Some(path)) = (data_path(FILE_TMP), data_path(FILE)) else { return };
        let bytes = std::slice::from_raw_parts(STATE.cast::<u8>(), std::mem::size_of::<State>());
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

unsafe fn data_path(relative: &CStr) -> Option<std::path::PathBuf> {
    let dir = unsafe { pg_sys::DataDir };
    if dir.is_null() {
        return None;
    }
    let dir = unsafe { CStr::from_ptr(dir) }.to_str().ok()?;
    Some(std::path::Path::new(dir).join(relative.to_str().ok()?))
}
