//! The ring of `sqlchat.log` rows in shared memory: `sqlchat_core::ops::ring` over one block of
//! `sqlchat.log_buffer` bytes behind its own LWLock (the second of the "sqlchat" tranche, so that
//! statistics and log never wait for each other). Requested and set up from the hooks in
//! `ops::shmem`. Rows still waiting at a clean shutdown are saved to `pg_stat/sqlchat.log_ring`
//! and handed over again at the next start; after a crash they are lost.

use crate::gucs;
use pgrx::pg_sys;
use sqlchat_core::ops::ring::{decode, encode, Full, Owner, Pending, Ring, RingState};
use std::ffi::CStr;

const NAME: &CStr = c"sqlchat log";
const FILE: &str = "pg_stat/sqlchat.log_ring";
const FILE_TMP: &str = "pg_stat/sqlchat.log_ring.tmp";

static mut STATE: *mut RingState = std::ptr::null_mut();
static mut BUFFER: *mut u8 = std::ptr::null_mut();
static mut CAPACITY: usize = 0;
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();

/// Shared memory to request (from shmem_request_hook).
pub fn size() -> usize {
    std::mem::size_of::<RingState>() + gucs::log_buffer_bytes()
}

/// From shmem_startup_hook, with AddinShmemInitLock held: finds or creates the block, and fills
/// a new one with the rows a clean shutdown saved.
///
/// # Safety
/// Only from the startup hook; `lock` is an LWLock of sqlchat's tranche.
pub unsafe fn startup(lock: *mut pg_sys::LWLock) {
    let capacity = gucs::log_buffer_bytes();
    let mut found = false;
    let block = unsafe { pg_sys::ShmemInitStruct(NAME.as_ptr(), size(), &mut found) }.cast::<u8>();
    unsafe {
        if !found {
            std::ptr::write_bytes(block, 0, size());
        }
        STATE = block.cast::<RingState>();
        BUFFER = block.add(std::mem::size_of::<RingState>());
        CAPACITY = capacity;
        LOCK = lock;
    }
    if !found {
        load();
    }
}

pub fn available() -> bool {
    unsafe { !STATE.is_null() }
}

/// Runs `f` on the ring under its lock; None without shared memory. `f` must not raise an ERROR.
fn with<R>(f: impl FnOnce(&mut Ring) -> R) -> Option<R> {
    unsafe {
        if STATE.is_null() {
            return None;
        }
        pg_sys::LWLockAcquire(LOCK, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let buf = std::slice::from_raw_parts_mut(BUFFER, CAPACITY);
        let r = f(&mut Ring::new(&mut *STATE, buf));
        pg_sys::LWLockRelease(LOCK);
        Some(r)
    }
}

/// Runs `f` on the ring without its lock: only in the postmaster, at startup and at exit, when
/// no other process uses it (the postmaster cannot wait for an LWLock).
fn unlocked<R>(f: impl FnOnce(&mut Ring) -> R) -> Option<R> {
    unsafe {
        if STATE.is_null() {
            return None;
        }
        let buf = std::slice::from_raw_parts_mut(BUFFER, CAPACITY);
        Some(f(&mut Ring::new(&mut *STATE, buf)))
    }
}

pub fn push(owner: Owner, at: i64, payload: &[u8]) -> Result<Pending, Full> {
    with(|r| r.push(owner, at, payload)).unwrap_or(Err(Full))
}

pub fn claim(database: u32, claimer: i32, max_bytes: usize) -> Vec<(Owner, Vec<u8>)> {
    with(|r| r.claim(database, claimer, max_bytes)).unwrap_or_default()
}

pub fn finish(claimer: i32) {
    with(|r| r.finish(claimer));
}

/// Gives `claimer`'s claimed rows back; how many there were.
pub fn release(claimer: i32) -> usize {
    with(|r| r.release(claimer)).unwrap_or(0)
}

pub fn pending(database: u32) -> Option<Pending> {
    with(|r| r.pending(database)).flatten()
}

pub fn oldest_ready() -> Option<(Owner, i64)> {
    with(|r| r.oldest_ready()).flatten()
}

pub fn discard(database: u32) -> Vec<Owner> {
    with(|r| r.discard(|d| d == database)).unwrap_or_default()
}

/// At the postmaster's clean exit, all other processes gone (from `ops::shmem`): saves the rows
/// not yet written.
pub fn save() {
    let Some(entries) = unlocked(|r| r.entries()) else { return };
    let (Some(tmp), Some(path)) = (data_path(FILE_TMP), data_path(FILE)) else { return };
    if entries.is_empty() {
        let _ = std::fs::remove_file(&path);
        return;
    }
    if std::fs::write(&tmp, encode(&entries)).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// Hands over again the rows a clean shutdown saved (those that fit), and removes the file.
fn load() {
    let Some(path) = data_path(FILE) else { return };
    let Ok(bytes) = std::fs::read(&path) else { return };
    let _ = std::fs::remove_file(&path);
    unlocked(|r| {
        for e in decode(&bytes) {
            let _ = r.push(e.owner, e.at, &e.payload);
        }
    });
}

fn data_path(relative: &str) -> Option<std::path::PathBuf> {
    let dir = unsafe { pg_sys::DataDir };
    if dir.is_null() {
        return None;
    }
    let dir = unsafe { CStr::from_ptr(dir) }.to_str().ok()?;
    Some(std::path::Path::new(dir).join(relative))
}
