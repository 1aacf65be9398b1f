//! The extension's own tables (memory, cache, background jobs, the interaction log): the only
//! code that writes them. Every access runs as the extension's owner (the tables are granted to no
//! one), inside a subtransaction, on rows stamped with the caller's role name, and only once the
//! tables are known to be the extension's; generated SQL never runs here.

pub mod cache;
pub mod job;
pub mod log;
pub mod memory;

use crate::gucs;
use crate::subxact::{self, OnSuccess};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
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
        Caller::of(unsafe { pg_sys::GetUserId() })
    }

    /// The session user (session_user): the role that logged in, or the one SET SESSION
    /// AUTHORIZATION chose.
    pub fn session() -> Caller {
        Caller::of(unsafe { pg_sys::GetSessionUserId() })
    }

    fn of(oid: pg_sys::Oid) -> Caller {
        let name = unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false)) };
        Caller { oid, name: name.to_string_lossy().into_owned() }
    }
}

thread_local! {
    /// The owner, remembered for one transaction (several store accesses per question).
    static OWNER: std::cell::Cell<Option<(pg_sys::LocalTransactionId, pg_sys::Oid)>> = const { std::cell::Cell::new(None) };
    static OWNER_PLAN: std::cell::RefCell<Option<OwnedPreparedStatement>> = const { std::cell::RefCell::new(None) };
}

/// Relations of schema sqlchat that the store reads or writes, and types it builds: each must be
/// the extension's own (a member of it in pg_depend) or not exist (an older version of the
/// extension). A schema called sqlchat is not enough: any role that may create a schema in a
/// database (its owner, a role with CREATEDB in a database of its own) can make one with
/// look-alike tables, and whatever the store touches there runs with the owner's rights.
const OWN_RELATIONS: [&str; 10] = [
    "sqlchat.turn",
    "sqlchat.session_summary",
    "sqlchat.cache",
    "sqlchat.quota",
    "sqlchat.job",
    "sqlchat.example",
    "sqlchat.definition",
    "sqlchat.private_column",
    "sqlchat.feedback",
    "sqlchat.log",
];
const OWN_TYPES: [&str; 1] = ["sqlchat.answer"];

/// The query giving the owner of the extension sqlchat when its schema is the one called sqlchat
/// and each of `OWN_RELATIONS` and `OWN_TYPES` that exists belongs to it; no row otherwise.
fn owner_query() -> String {
    let names = |list: &[&str], to_reg: &str| {
        list.iter().map(|n| format!("pg_catalog.{to_reg}('{n}')::pg_catalog.oid")).collect::<Vec<_>>().join(", ")
    };
    format!(
        "WITH used (classid, objid) AS ( \
           SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, o FROM pg_catalog.unnest(ARRAY[{relations}]) o \
           UNION ALL \
           SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, o FROM pg_catalog.unnest(ARRAY[{types}]) o) \
         SELECT e.extowner FROM pg_catalog.pg_extension e \
         WHERE e.extname OPERATOR(pg_catalog.=) 'sqlchat' \
           AND e.extnamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace('sqlchat')::pg_catalog.oid \
           AND NOT EXISTS (SELECT FROM used u WHERE u.objid IS NOT NULL AND NOT EXISTS ( \
             SELECT FROM pg_catalog.pg_depend d \
             WHERE d.classid OPERATOR(pg_catalog.=) u.classid AND d.objid OPERATOR(pg_catalog.=) u.objid \
               AND d.objsubid OPERATOR(pg_catalog.=) 0 \
               AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass::pg_catalog.oid \
               AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'))",
        relations = names(&OWN_RELATIONS, "to_regclass"),
        types = names(&OWN_TYPES, "to_regtype"),
    )
}

/// The role the store works as: the owner of the extension (pg_extension.extowner), never the
/// owner of whatever a schema called sqlchat holds (see `OWN_RELATIONS`). Looked up once per
/// transaction, under sqlchat's own search_path: the extension can be dropped and created again by
/// another role in the session, and the caller's operators must not decide the answer.
fn owner() -> Result<pg_sys::Oid, Error> {
    let transaction = crate::compat::local_transaction_id();
    if let Some((lxid, owner)) = OWNER.with(|o| o.get()) {
        if lxid == transaction {
            return Ok(owner);
        }
    }
    let owner = gucs::with_search_path(gucs::SYSTEM_SEARCH_PATH, || {
        Spi::connect(|c| {
            // Planned once per backend (PostgreSQL plans it again when the catalogs change).
            let plan = match OWNER_PLAN.with(|p| p.borrow_mut().take()) {
                Some(plan) => plan,
                None => c.prepare(owner_query().as_str(), &[])?.keep(),
            };
            let owner = c.select(&plan, None, &[])?.first().get_one::<pg_sys::Oid>();
            OWNER_PLAN.with(|p| *p.borrow_mut() = Some(plan));
            owner
        })
    })
    .map_err(|e| Error::Internal { detail: format!("looking up the extension sqlchat: {e}") })?
    .ok_or_else(|| Error::Internal {
        detail: "the extension sqlchat is not installed in this database, or schema sqlchat holds tables that \
                 are not the extension's"
            .into(),
    })?;
    OWNER.with(|o| o.set(Some((transaction, owner))));
    Ok(owner)
}

/// Whether this database has the extension with its own table `table` (one of `OWN_RELATIONS`): a
/// table of that name that is not the extension's is never read (see `owner`).
pub fn has_own_table(table: &'static str) -> bool {
    debug_assert!(OWN_RELATIONS.contains(&table));
    owner().is_ok()
        && gucs::with_search_path(gucs::SYSTEM_SEARCH_PATH, || {
            Spi::get_one_with_args::<bool>("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[table.into()])
        })
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Removes at most `batch` rows of `table` whose `at` column is more than `retention_s` seconds
/// old, skipping rows another transaction holds; the number removed and in how many seconds the
/// next one is due (None when no row has an `at`). `table` and `at` are sqlchat's own names.
pub fn remove_expired(
    what: &str,
    table: &'static str,
    at: &'static str,
    retention_s: f64,
    batch: i64,
) -> Option<(i64, Option<f64>)> {
    debug_assert!(OWN_RELATIONS.contains(&table));
    let delete = format!(
        "DELETE FROM {table} WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY( \
         SELECT ctid FROM {table} WHERE {at} OPERATOR(pg_catalog.<) \
         (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1)) \
         LIMIT $2 FOR UPDATE SKIP LOCKED))"
    );
    let next_due = format!(
        "SELECT pg_catalog.date_part('epoch', (pg_catalog.min({at}) OPERATOR(pg_catalog.+) \
         pg_catalog.make_interval(secs => $1)) OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()) \
         FROM {table} WHERE {at} IS NOT NULL"
    );
    as_owner(what, || {
        Spi::connect_mut(|c| {
            let removed = c.update(&delete, None, &[retention_s.into(), batch.into()])?.len() as i64;
            let next = c.select(&next_due, None, &[retention_s.into()])?.first().get_one::<f64>()?;
            Ok((removed, next))
        })
    })
}

/// True when the caller may administer sqlchat's tables: a superuser or a member of the extension's owner.
pub fn caller_is_admin() -> bool {
    match owner() {
        Ok(o) => unsafe { pg_sys::superuser() || pg_sys::has_privs_of_role(pg_sys::GetUserId(), o) },
        Err(_) => unsafe { pg_sys::superuser() },
    }
}

/// Runs `work` as the extension's owner in a subtransaction, committed when `work` succeeds. A cancel is
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
