//! sqlchat's own deadline for a generated query. `SET statement_timeout` cannot shorten a
//! statement that is already running, so this registers a timeout of PostgreSQL's timeout
//! framework (utils/timeout.h, not bound by pgrx) whose handler requests a query cancel.

use pgrx::pg_sys;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

// utils/timeout.h
#[allow(non_camel_case_types)]
type TimeoutId = i32;
type TimeoutHandler = unsafe extern "C" fn();

extern "C" {
    fn RegisterTimeout(id: TimeoutId, handler: TimeoutHandler) -> TimeoutId;
    fn enable_timeout_after(id: TimeoutId, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: TimeoutId, keep_indicator: bool);
}

static TIMEOUT_ID: AtomicI32 = AtomicI32::new(-1);
static FIRED: AtomicBool = AtomicBool::new(false);

/// Runs in signal context: only flags and the latch, as PostgreSQL's own handlers do.
unsafe extern "C" fn on_deadline() {
    FIRED.store(true, Ordering::SeqCst);
    pg_sys::QueryCancelPending = 1;
    pg_sys::InterruptPending = 1;
    if !pg_sys::MyLatch.is_null() {
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}

fn timeout_id() -> TimeoutId {
    let id = TIMEOUT_ID.load(Ordering::Relaxed);
    if id >= 0 {
        return id;
    }
    let id = unsafe { RegisterTimeout(crate::compat::USER_TIMEOUT, on_deadline) };
    TIMEOUT_ID.store(id, Ordering::Relaxed);
    id
}

pub struct Deadline {
    armed: bool,
}

impl Deadline {
    pub fn arm(ms: u64) -> Deadline {
        FIRED.store(false, Ordering::SeqCst);
        if ms == 0 {
            return Deadline { armed: false };
        }
        unsafe { enable_timeout_after(timeout_id(), ms.min(i32::MAX as u64) as i32) };
        Deadline { armed: true }
    }

    /// Stops the timer; true when it fired.
    pub fn disarm(self) -> bool {
        if self.armed {
            unsafe { disable_timeout(timeout_id(), false) };
        }
        FIRED.swap(false, Ordering::SeqCst)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if self.armed {
            unsafe { disable_timeout(timeout_id(), false) };
        }
    }
}
