//! What differs between the PostgreSQL major versions sqlchat builds for (15 to 18), in one place.
//!
//! Exactly one of the features pg15, pg16, pg17 and pg18 is on: `cargo pgrx` picks it from the
//! pg_config it builds against. Code elsewhere calls the functions here and never tests a pgNN
//! feature itself. A new difference gets a function here with one definition per version (or a
//! `cfg(any(...))` group), named for what it returns rather than for the field it reads.
//!
//! The differences so far:
//! - the first user-definable timeout id (utils/timeout.h, not bound by pgrx): PostgreSQL 17 added
//!   TRANSACTION_TIMEOUT before it;
//! - the local transaction id of this backend: PostgreSQL 17 moved `PGPROC.lxid` to `PGPROC.vxid.lxid`;
//! - the role a relation is checked as: PostgreSQL 16 moved `RangeTblEntry.checkAsUser` to the
//!   query's `RTEPermissionInfo` list;
//! - the list of settings: PostgreSQL 16 keeps them in a hash table and `get_guc_variables` builds
//!   an array and says how long it is;
//! - installing a signal handler: PostgreSQL 18 calls the backend's `pqsignal` `pqsignal_be`;
//! - the columns a relation is read for: PostgreSQL 16 moved `RangeTblEntry.selectedCols` (and
//!   `requiredPerms`) to the query's `RTEPermissionInfo` list too;
//! - the wait event shown while waiting for the gateway: PostgreSQL 17 lets an extension name its
//!   own (`SqlchatGateway`); before, it is the generic `Extension`;
//! - the `pg_has_role` privilege that SET ROLE needs: PostgreSQL 16 added `SET` (a membership
//!   granted WITH SET FALSE does not allow SET ROLE); 15 has `MEMBER` only.

use pgrx::pg_sys;

/// The first user-definable id of utils/timeout.h's TimeoutId enum.
#[cfg(any(feature = "pg15", feature = "pg16"))]
pub const USER_TIMEOUT: i32 = 12;
#[cfg(any(feature = "pg17", feature = "pg18"))]
pub const USER_TIMEOUT: i32 = 13;

/// The `pg_has_role` privilege that says whether a role may `SET ROLE` to another.
#[cfg(feature = "pg15")]
pub const SET_ROLE_PRIVILEGE: &str = "MEMBER";
#[cfg(not(feature = "pg15"))]
pub const SET_ROLE_PRIVILEGE: &str = "SET";

/// This backend's local transaction id: changes with every top-level transaction.
pub fn local_transaction_id() -> pg_sys::LocalTransactionId {
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    unsafe {
        (*pg_sys::MyProc).lxid
    }
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    unsafe {
        (*pg_sys::MyProc).vxid.lxid
    }
}

/// The role whose privileges apply to a relation the query reads: the owner of the view it was
/// reached through, or InvalidOid for the current user.
///
/// # Safety
/// `rte` must be an entry of `query`'s range table.
#[allow(unused_variables)]
pub unsafe fn check_as_user(query: &pg_sys::Query, rte: &pg_sys::RangeTblEntry) -> pg_sys::Oid {
    #[cfg(feature = "pg15")]
    {
        rte.checkAsUser
    }
    #[cfg(not(feature = "pg15"))]
    {
        if rte.perminfoindex == 0 {
            return pg_sys::InvalidOid;
        }
        let info = pg_sys::getRTEPermissionInfo(query.rteperminfos, rte as *const _ as *mut pg_sys::RangeTblEntry);
        (*info).checkAsUser
    }
}

/// The columns (attribute numbers, 0 for a whole-row reference) the query reads of a relation it
/// needs SELECT on, or None when it needs no SELECT on it.
///
/// # Safety
/// `rte` must be an entry of `query`'s range table.
#[allow(unused_variables)]
pub unsafe fn selected_columns(query: &pg_sys::Query, rte: &pg_sys::RangeTblEntry) -> Option<Vec<i16>> {
    #[cfg(feature = "pg15")]
    let (perms, cols) = (rte.requiredPerms, rte.selectedCols);
    #[cfg(not(feature = "pg15"))]
    let (perms, cols) = {
        if rte.perminfoindex == 0 {
            return None;
        }
        let info = pg_sys::getRTEPermissionInfo(query.rteperminfos, rte as *const _ as *mut pg_sys::RangeTblEntry);
        ((*info).requiredPerms, (*info).selectedCols)
    };
    if perms & pg_sys::AclMode::from(pg_sys::ACL_SELECT) == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut member = -1;
    loop {
        member = pg_sys::bms_next_member(cols, member);
        if member < 0 {
            break;
        }
        out.push((member + pg_sys::FirstLowInvalidHeapAttributeNumber) as i16);
    }
    Some(out)
}

/// STATEMENT_TIMEOUT in utils/timeout.h's TimeoutId enum: the same from 15 to 18 (17's
/// TRANSACTION_TIMEOUT comes after it).
pub const STATEMENT_TIMEOUT: i32 = 3;

/// Every setting this process knows (built-in, from libraries, and custom placeholders). From 16
/// on the array is palloc'd in the current memory context.
pub fn guc_variables() -> Vec<*mut pg_sys::config_generic> {
    #[cfg(feature = "pg15")]
    let (vars, count) = unsafe { (pg_sys::get_guc_variables(), pg_sys::GetNumConfigOptions()) };
    #[cfg(not(feature = "pg15"))]
    let (vars, count) = unsafe {
        let mut count = 0;
        (pg_sys::get_guc_variables(&mut count), count)
    };
    if vars.is_null() {
        return Vec::new();
    }
    let vars = unsafe { std::slice::from_raw_parts(vars, count.max(0) as usize) };
    vars.iter().copied().filter(|v| !v.is_null()).collect()
}

/// Installs a signal handler in this process.
pub fn set_signal_handler(signal: i32, handler: pg_sys::pqsigfunc) {
    #[cfg(not(feature = "pg18"))]
    unsafe {
        pg_sys::pqsignal(signal, handler);
    }
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::pqsignal_be(signal, handler);
    }
}

/// The wait event a backend reports (pg_stat_activity.wait_event) while it waits for the gateway.
pub fn gateway_wait_event() -> u32 {
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    {
        pg_sys::PG_WAIT_EXTENSION
    }
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    {
        // Registered once per backend; PostgreSQL keeps the name in shared memory.
        static EVENT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        *EVENT.get_or_init(|| unsafe { pg_sys::WaitEventExtensionNew(c"SqlchatGateway".as_ptr()) })
    }
}
