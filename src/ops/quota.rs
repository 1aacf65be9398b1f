//! Per-role quotas. Definitions live in `sqlchat.quota` (per database, set by superusers with
//! `sqlchat.set_quota`), read once per backend and again when another backend commits a change
//! (a generation number in shared memory); usage lives in shared memory. A role's limits are its
//! own quota's, else the stricter of the quotas of roles it is a member of, else the default
//! quota (role NULL), else none.

use super::shmem;
use crate::store::{self, Caller};
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::error::Error;
use sqlchat_core::ops::quota::{utc_timestamp, Limits, Usage};
use std::cell::{Cell, RefCell};

/// One row of sqlchat.quota; role oid 0 is the default quota.
#[derive(Clone)]
pub struct Definition {
    pub role_oid: pg_sys::Oid,
    pub role_name: String,
    pub limits: Limits,
}

struct Loaded {
    generation: u64,
    database: pg_sys::Oid,
    definitions: Vec<Definition>,
}

thread_local! {
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
    /// The next `admit_ask` lets its ask through uncounted: it was counted when it was submitted.
    static ADMITTED_AT_SUBMIT: Cell<bool> = const { Cell::new(false) };
    /// While a background job runs: the session user that submitted it, charged too.
    static JOB_LOGIN: RefCell<Option<Caller>> = const { RefCell::new(None) };
    /// This transaction changed a definition: other backends reload once it commits.
    static CHANGED: Cell<bool> = const { Cell::new(false) };
}

pub fn definitions() -> Vec<Definition> {
    let generation = shmem::quota_generation();
    let database = unsafe { pg_sys::MyDatabaseId };
    let fresh = LOADED.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|l| l.generation == generation && l.database == database)
            .map(|l| l.definitions.clone())
    });
    if let Some(d) = fresh {
        return d;
    }
    let definitions = read_definitions();
    LOADED.with(|l| *l.borrow_mut() = Some(Loaded { generation, database, definitions: definitions.clone() }));
    definitions
}

fn read_definitions() -> Vec<Definition> {
    store::as_owner("reading quotas", || {
        Spi::connect(|c| {
            let rows = c.select(
                "SELECT role_oid, role_name::text, asks_per_hour, tokens_per_day FROM sqlchat.quota",
                None,
                &[],
            )?;
            let mut out = Vec::new();
            for row in rows {
                out.push(Definition {
                    role_oid: row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                    role_name: row.get::<String>(2)?.unwrap_or_default(),
                    limits: Limits {
                        asks_per_hour: row.get::<i32>(3)?.map(|n| n.max(0) as u64),
                        tokens_per_day: row.get::<i64>(4)?.map(|n| n.max(0) as u64),
                    },
                });
            }
            Ok(out)
        })
    })
    .unwrap_or_default()
}

/// The caller's limits (see the module comment).
pub fn limits_for(caller: &Caller) -> Limits {
    applicable(caller, &definitions()).map(|(_, l)| l).unwrap_or_default()
}

/// The quota that applies to a role and whose it is: the role's own name, the names of the groups
/// whose quotas combine, or `default`.
pub fn applicable(caller: &Caller, definitions: &[Definition]) -> Option<(String, Limits)> {
    if let Some(own) = definitions.iter().find(|d| d.role_oid == caller.oid && d.role_name == caller.name) {
        return Some((own.role_name.clone(), own.limits));
    }
    let groups: Vec<&Definition> = definitions
        .iter()
        .filter(|d| d.role_oid != pg_sys::InvalidOid && d.role_oid != caller.oid)
        .filter(|d| unsafe { pg_sys::has_privs_of_role(caller.oid, d.role_oid) })
        .collect();
    if let Some(limits) = groups.iter().map(|d| d.limits).reduce(Limits::stricter) {
        let names: Vec<&str> = groups.iter().map(|d| d.role_name.as_str()).collect();
        return Some((names.join(", "), limits));
    }
    definitions.iter().find(|d| d.role_oid == pg_sys::InvalidOid).map(|d| ("default".to_string(), d.limits))
}

/// Roles with usage counted in this database (role oids).
pub fn roles_with_usage() -> Vec<pg_sys::Oid> {
    let database = unsafe { pg_sys::MyDatabaseId.to_u32() };
    shmem::with(|s| {
        s.quotas.iter().filter(|q| q.used != 0 && q.database == database).map(|q| pg_sys::Oid::from(q.role)).collect()
    })
    .unwrap_or_default()
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The roles an ask counts against: the current role, and the session's user when it differs, so
/// that a role that may `SET ROLE` to a group (or call a `SECURITY DEFINER` function) does not
/// leave its own quota behind. The stricter of the two refuses.
/// In a background job, the session user that submitted it counts too (the job runs with its role
/// as the session's user).
pub fn askers() -> Vec<Caller> {
    let mut askers = vec![Caller::current()];
    let others = [Some(Caller::session()), JOB_LOGIN.with(|l| l.borrow().clone())];
    for other in others.into_iter().flatten() {
        if !askers.iter().any(|a| a.oid == other.oid) {
            askers.push(other);
        }
    }
    askers
}

/// Counts one ask against the quota of each of `askers()`, or refuses it.
pub fn admit_ask() -> Result<(), Error> {
    if ADMITTED_AT_SUBMIT.with(|a| a.replace(false)) {
        return Ok(());
    }
    askers().iter().try_for_each(admit)
}

/// Runs the ask of a background job that `login` submitted, counted against the quotas when it
/// was submitted: the first `admit_ask` in `run` (the job's own) counts nothing; any later one (an
/// ask nested in it) counts. Its tokens are charged to `login` too.
pub fn admitted_at_submit<R>(login: Caller, run: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ADMITTED_AT_SUBMIT.with(|a| a.set(false));
            JOB_LOGIN.with(|l| l.borrow_mut().take());
        }
    }
    ADMITTED_AT_SUBMIT.with(|a| a.set(true));
    JOB_LOGIN.with(|l| *l.borrow_mut() = Some(login));
    let _reset = Reset;
    run()
}

/// Counts one ask against the caller's quota, or refuses it (53400, with when it resets).
/// Without shared memory, an ask is refused only when quotas are defined: they cannot be kept.
fn admit(caller: &Caller) -> Result<(), Error> {
    if !shmem::available() {
        return match definitions().is_empty() {
            true => Ok(()),
            false => Err(Error::NotPreloaded { what: "sqlchat.quota (quotas are defined in this database)".into() }),
        };
    }
    let limits = limits_for(caller);
    if limits.is_unlimited() {
        return Ok(());
    }
    let now = now_s();
    let database = unsafe { pg_sys::MyDatabaseId.to_u32() };
    shmem::with(|s| match s.quota_usage(database, caller.oid.to_u32(), now) {
        Some(usage) => usage.admit(limits, &caller.name, now),
        None => Err(Error::QuotaExceeded {
            role: caller.name.clone(),
            limit: format!("a quota: sqlchat counts at most {} roles with quotas at once", shmem::QUOTA_SLOTS),
            resets_at: utc_timestamp((now / 3600 + 1) * 3600),
        }),
    })
    .unwrap_or(Ok(()))
}

/// Adds tokens an ask used to the quota of each of `askers()` that has a token limit.
pub fn charge_tokens(tokens: u64) {
    if tokens == 0 || !shmem::available() {
        return;
    }
    let now = now_s();
    let database = unsafe { pg_sys::MyDatabaseId.to_u32() };
    for caller in askers() {
        if limits_for(&caller).tokens_per_day.is_none() {
            continue;
        }
        shmem::with(|s| {
            if let Some(usage) = s.quota_usage(database, caller.oid.to_u32(), now) {
                usage.charge_tokens(tokens, now);
            }
        });
    }
}

/// The usage of a role in this database, as of now (windows rolled).
pub fn usage_of(role_oid: pg_sys::Oid) -> Usage {
    let database = unsafe { pg_sys::MyDatabaseId.to_u32() };
    let mut usage = shmem::with(|s| s.peek_quota_usage(database, role_oid.to_u32())).flatten().unwrap_or_default();
    usage.roll(now_s());
    usage
}

/// Marks the definitions changed; other backends see it once this transaction commits.
pub fn changed() {
    CHANGED.with(|c| c.set(true));
}

pub fn register_commit_callback() {
    unsafe { pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            if CHANGED.with(|c| c.replace(false)) =>
        {
            shmem::bump_quota_generation();
            LOADED.with(|l| *l.borrow_mut() = None);
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
            if CHANGED.with(|c| c.replace(false)) =>
        {
            LOADED.with(|l| *l.borrow_mut() = None);
        }
        _ => {}
    }
}
