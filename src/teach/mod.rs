//! Teaching in the backend: the tables of examples, definitions, private columns and feedback
//! (sql/teach.sql), read and written as their owner like memory and cache, and what an ask needs
//! of them. The decisions are sqlchat_core::teach's.

pub mod private;
mod sql;
mod store;

use crate::error::raise;
use crate::gucs;
use crate::store::{caller_is_admin, Caller};
use pgrx::pg_sys;
use sqlchat_core::error::Error;
use sqlchat_core::teach::Teaching;

pub use store::{load, private_count, record_use};

/// What is taught, as one ask needs it: the core's view and the private columns by oid.
pub struct Loaded {
    pub teaching: std::sync::Arc<Teaching>,
    pub private: private::PrivateSet,
}

/// Superusers, the extension's owner and members of `sqlchat.teacher_role` may teach and define:
/// what they write reaches everyone's prompts.
pub fn caller_is_teacher() -> bool {
    if caller_is_admin() {
        return true;
    }
    let Some(role) = gucs::teacher_role() else { return false };
    let Ok(name) = std::ffi::CString::new(role) else { return false };
    unsafe {
        let oid = pg_sys::get_role_oid(name.as_ptr(), true);
        oid != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid)
    }
}

fn require_teacher(what: &str) {
    if !caller_is_teacher() {
        raise(Error::Privileged {
            what: what.into(),
            role: Caller::current().name,
            hint: "Teaching changes every role's prompts: ask a superuser, the owner of the sqlchat extension, or a member of the role named in sqlchat.teacher_role.".into(),
        });
    }
}

/// Teaching writes tables: never on a standby or in a read-only transaction.
fn require_writable(what: &str) {
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise(Error::TeachReadOnly { what: what.into(), place: "on a hot standby" });
    }
    if !crate::store::writable() {
        raise(Error::TeachReadOnly { what: what.into(), place: "in a read-only transaction" });
    }
}
