//! The extension's own tables (memory, cache, background jobs, the interaction log): the only
//! code that writes them. Every access runs as the tables' owner (they are granted to no one),
//! inside a subtransaction, on rows stamped with the caller's role name; generated SQL never
//! runs here.

pub mod cache;
pub mod job;
pub mod log;
pub mod memory;

use crate::gucs;
use crate::subxact::{self, OnSuccess};
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::error::Error;
use std::ffi::CStr;

/// False on a hot standby and in a read-only transaction: writes are skipped there, never fatal.
pub fn writable() -> bool {
    unsafe { !pg_sys::RecoveryInProgress() && !pg_sys::XactReadOnly }
}

/// The role a row is written for and read back by: its oid and its name at the time. Rows match
/// both, so that a role created later with a dropped role's name (or, after a restore into another
/// cluster, with its oid) never sees that role's turns or cached statements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub oid: pg_sys::Oid,
    pub name: String,
}

impl Caller {
    /// The current role (current_user).
    pub fn current() -> Caller {
        unsafe {
            let oid = pg_sys::GetUserId();
            let name = pg_sys::GetUserNameFromId(oid, false);
            Caller { oid, name: CStr::from_ptr(name).to_string_lossy().into_owned() }
        }
    }
}

thread_local! {
    /// The owner, remembered for one transaction (several store accesses per question).
    static OWNER: std::cell::Cell<Option<(pg_sys::LocalTransactionId, pg_sys::Oid)>> = const { std::cell::Cell::new(None) };
}

/// The owner of sqlchat's tables (the role that created the extension). Looked up once per
/// transaction: the extension can be dropped and created again by another role in the session.
fn owner() -> Result<pg_sys::Oid, Error> {
    let transaction = crate::compat::local_transaction_id();
    if let Some((lxid, owner)) = OWNER.with(|o| o.get()) {
        if lxid == transaction {
            return Ok(owner);
        }
    }
    let owner = Spi::connect(|c| {
        c.select(
            "SELECT relowner FROM pg_catalog.pg_class \
             WHERE oid OPERATOR(pg_catalog.=) 'sqlchat.turn'::pg_catalog.regclass",
            None,
            &[],
        )?
        .first()
        .get_one::<pg_sys::Oid>()
    })
    .map_err(|e| Error::Internal { detail: format!("sqlchat's tables are missing: {e}") })?
    .ok_or_else(|| Error::Internal { detail: "sqlchat.turn has no owner".into() })?;
    OWNER.with(|o| o.set(Some((transaction, owner))));
    Ok(owner)
}

/// True when the caller may administer sqlchat's tables: a superuser or a member of the owner.
pub fn caller_is_admin() -> bool {
    match owner() {
        Ok(o) => unsafe { pg_sys::superuser() || pg_sys::has_privs_of_role(pg_sys::GetUserId(), o) },
        Err(_) => unsafe { pg_sys::superuser() },
    }
}

/// Runs `work` as the tables' owner in a subtransaction, committed when `work` succeeds. A cancel is
/// raised at once; any other failure is reported as a WARNING and gives None, so memory or cache
/// trouble never costs the caller an answer.
pub fn as_owner<R>(what: &str, work: impl FnOnce() -> Result<R, pgrx::spi::Error>) -> Option<R> {
    let owner = match owner() {
        Ok(o) => o,
        Err(e) => {
            pgrx::warning!("sqlchat: {what} skipped: {e}");
            return None;
        }
    };
    let result = subxact::run(OnSuccess::Commit, || unsafe {
        let mut caller: pg_sys::Oid = pg_sys::InvalidOid;
        let mut context: i32 = 0;
        pg_sys::GetUserIdAndSecContext(&mut caller, &mut context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            context | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32,
        );
        // A search_path of our own while running as the owner: no operator or function the caller
        // created can be picked up with the owner's rights.
        let outcome = gucs::with_search_path(gucs::SYSTEM_SEARCH_PATH, work);
        pg_sys::SetUserIdAndSecContext(caller, context);
        match outcome {
            Ok(r) => r,
            // An ERROR rolls the subtransaction back: half of a failed change is never kept.
            Err(e) => pgrx::error!("{e}"),
        }
    });
    match result {
        Ok(r) => Some(r),
        Err(f) if f.is_cancel() => crate::error::raise(Error::Cancelled { message: f.message }),
        Err(f) => {
            pgrx::warning!("sqlchat: {what} failed: {} (SQLSTATE {})", f.message, f.sqlstate);
            None
        }
    }
}
