//! What may run while a generated statement is analysed, planned and executed. PostgreSQL runs
//! code that other roles wrote without the statement naming it: a domain's CHECK constraint when a
//! literal is parsed, a row-level security policy, a range type's subtype_diff in the planner,
//! operators and casts inside those. That code runs with the caller's rights. Two hooks see all
//! of it while a sandbox is active:
//!
//! - the object-access hook sees every function the executor or the planner compiles into an
//!   expression (built-ins included): it must pass the function policy that generated SQL passes
//!   (`sqlchat_core::policy`), unless the guard vetted it as part of a policy or domain written by a
//!   role that has the caller's privileges;
//! - the fmgr hooks see every call of a non-built-in function, however it is reached: it must be
//!   listed in `sqlchat.allowed_functions` or belong to a role that has all of the caller's
//!   privileges (SECURITY DEFINER is no exemption: it would still act in the caller's session). Inside such a function its own
//!   code runs unchecked: it is the code of someone the caller already trusts with its rights.
//!
//! Until the guard has looked at the analysed statement (while it is parsed and analysed) nothing is
//! vetted. A refusal raises an ERROR inside the sandbox's subtransaction and is reported as such.

use pgrx::pg_sys;
use sqlchat_core::error::Refusal;
use sqlchat_core::policy::{self, Origin};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// SPI_prepare: parse analysis and rewriting. Only the function policy applies.
    Analysis,
    /// Planning and execution, after the guard: vetted functions may run too.
    Execution,
}

struct State {
    caller: pg_sys::Oid,
    allowed: Vec<String>,
    phase: Phase,
    /// Functions of policies and domains whose authors have the caller's privileges.
    vetted: HashSet<pg_sys::Oid>,
    /// One entry per fmgr-hooked call in progress: whether it opened trusted code.
    calls: Vec<bool>,
    trusted_depth: u32,
    expression_verdicts: HashMap<pg_sys::Oid, Option<String>>,
    call_verdicts: HashMap<pg_sys::Oid, Option<String>>,
    /// The first refusal a hook raised, so the sandbox can tell it from the query's own 42501.
    refusal: Option<(Refusal, String)>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

static mut PREV_NEEDS_FMGR_HOOK: pg_sys::needs_fmgr_hook_type = None;
static mut PREV_FMGR_HOOK: pg_sys::fmgr_hook_type = None;
static mut PREV_OBJECT_ACCESS_HOOK: pg_sys::object_access_hook_type = None;

/// Installs the hooks; from _PG_init, once per process. They do nothing outside a sandbox.
pub fn install_hooks() {
    unsafe {
        PREV_NEEDS_FMGR_HOOK = pg_sys::needs_fmgr_hook;
        pg_sys::needs_fmgr_hook = Some(needs_fmgr_hook);
        PREV_FMGR_HOOK = pg_sys::fmgr_hook;
        pg_sys::fmgr_hook = Some(fmgr_hook);
        PREV_OBJECT_ACCESS_HOOK = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access_hook);
    }
}

/// The sandbox's lifetime for the hooks: active from `begin` until dropped.
pub struct Scope(());

/// Refuses a call of sqlchat's own functions while a sandbox is active: code another role wrote
/// could otherwise open a sandbox of its own and, ending it, switch the outer one's hooks off.
pub fn refuse_reentry(function: &str) {
    if active() {
        crate::error::raise(sqlchat_core::Error::Reentered { function: function.to_string() });
    }
}

impl Scope {
    pub fn begin(allowed: Vec<String>) -> Scope {
        refuse_reentry("a statement of sqlchat's");
        let caller = unsafe { pg_sys::GetUserId() };
        STATE.with(|s| {
            *s.borrow_mut() = Some(State {
                caller,
                allowed,
                phase: Phase::Analysis,
                vetted: HashSet::new(),
                calls: Vec::new(),
                trusted_depth: 0,
                expression_verdicts: HashMap::new(),
                call_verdicts: HashMap::new(),
                refusal: None,
            })
        });
        Scope(())
    }

    /// After the guard: planning and execution may run the vetted functions too.
    pub fn execute(&self, vetted: HashSet<pg_sys::Oid>) {
        with_state(|s| {
            s.phase = Phase::Execution;
            s.vetted = vetted;
            s.expression_verdicts.clear();
        });
    }

    /// The refusal a hook raised, if any.
    pub fn refusal(&self) -> Option<(Refusal, String)> {
        with_state(|s| s.refusal.clone()).flatten()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        STATE.with(|s| *s.borrow_mut() = None);
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.with(|s| s.borrow_mut().as_mut().map(f))
}

pub fn active() -> bool {
    STATE.with(|s| s.borrow().is_some())
}

/// Whether a role may have its code run with the caller's rights: it has all of them.
pub fn trusted_owner(owner: pg_sys::Oid, caller: pg_sys::Oid) -> bool {
    owner == caller || unsafe { pg_sys::has_privs_of_role(owner, caller) }
}

pub fn is_builtin(oid: pg_sys::Oid) -> bool {
    u32::from(oid) < pg_sys::FirstNormalObjectId
}

/// What the catalog says about a function, for the decisions below.
pub struct FunctionInfo {
    pub schema: String,
    pub name: String,
    pub owner: pg_sys::Oid,
    pub volatility: char,
}

impl FunctionInfo {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

pub fn function_info(funcid: pg_sys::Oid) -> Option<FunctionInfo> {
    unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::PROCOID as i32, pg_sys::Datum::from(funcid));
        if tuple.is_null() {
            return None;
        }
        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(tuple);
        let name = CStr::from_ptr((*form).proname.data.as_ptr()).to_string_lossy().into_owned();
        let info = FunctionInfo {
            schema: cstr(pg_sys::get_namespace_name((*form).pronamespace)),
            name,
            owner: (*form).proowner,
            volatility: (*form).provolatile as u8 as char,
        };
        pg_sys::ReleaseSysCache(tuple);
        Some(info)
    }
}

pub fn role_name(role: pg_sys::Oid) -> String {
    unsafe { cstr(pg_sys::GetUserNameFromId(role, true)) }
}

pub unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Why a function written into an expression may not run now, or None.
fn expression_verdict(funcid: pg_sys::Oid, allowed: &[String], vetted: bool) -> Option<String> {
    if vetted {
        return None;
    }
    let Some(f) = function_info(funcid) else {
        return Some(format!("function {funcid} could not be looked up"));
    };
    // The statement's own functions passed the guard under the stricter Query rules already.
    policy::function_refusal(Origin::Filter, &f.schema, &f.name, f.volatility, is_builtin(funcid), allowed).map(
        |reason| {
            format!(
                "{reason}; it would run as part of a domain, row-level security policy or type that the query reaches"
            )
        },
    )
}

/// Why a non-built-in function may not be called with the caller's rights now, or None.
fn call_verdict(funcid: pg_sys::Oid, allowed: &[String], caller: pg_sys::Oid) -> Option<String> {
    let Some(f) = function_info(funcid) else {
        return Some(format!("function {funcid} could not be looked up"));
    };
    // SECURITY DEFINER is no exemption: such a function runs with its owner's rights but in the
    // caller's session, where it can take session locks, see the caller's query or catch its cancel.
    if policy::is_listed(&f.schema, &f.name, allowed) || trusted_owner(f.owner, caller) {
        return None;
    }
    Some(format!(
        "function {} belongs to role {}, which does not have the privileges of role {}; sqlchat does not run it with them",
        f.qualified(),
        role_name(f.owner),
        role_name(caller)
    ))
}

/// Records the refusal and raises it as an ERROR (42501) inside the sandbox.
fn refuse(kind: Refusal, reason: String) -> ! {
    with_state(|s| {
        if s.refusal.is_none() {
            s.refusal = Some((kind, reason.clone()));
        }
    });
    pgrx::ereport!(
        pgrx::PgLogLevel::ERROR,
        pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("sqlchat: {reason}")
    );
    unreachable!()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn needs_fmgr_hook(fn_oid: pg_sys::Oid) -> bool {
    // During a sandbox every non-built-in call goes through fmgr_hook (and SQL functions are not
    // inlined, so their bodies are compiled, and checked, as calls).
    if active() {
        return true;
    }
    match PREV_NEEDS_FMGR_HOOK {
        Some(prev) => prev(fn_oid),
        None => false,
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn fmgr_hook(
    event: pg_sys::FmgrHookEventType::Type,
    flinfo: *mut pg_sys::FmgrInfo,
    arg: *mut pg_sys::Datum,
) {
    if let Some(prev) = PREV_FMGR_HOOK {
        prev(event, flinfo, arg);
    }
    if flinfo.is_null() || !active() {
        return;
    }
    let funcid = (*flinfo).fn_oid;
    match event {
        pg_sys::FmgrHookEventType::FHET_START => {
            let Some((trusted, cached)) = with_state(|s| (s.trusted_depth > 0, s.call_verdicts.get(&funcid).cloned()))
            else {
                return;
            };
            let verdict = if trusted {
                None
            } else {
                cached.unwrap_or_else(|| {
                    let (allowed, caller) = with_state(|s| (s.allowed.clone(), s.caller)).unwrap_or_default();
                    let v = call_verdict(funcid, &allowed, caller);
                    with_state(|s| s.call_verdicts.insert(funcid, v.clone()));
                    v
                })
            };
            if let Some(reason) = verdict {
                refuse(Refusal::ForeignCode, reason);
            }
            with_state(|s| {
                s.calls.push(true);
                s.trusted_depth += 1;
            });
        }
        pg_sys::FmgrHookEventType::FHET_END | pg_sys::FmgrHookEventType::FHET_ABORT => {
            with_state(|s| {
                if s.calls.pop() == Some(true) {
                    s.trusted_depth = s.trusted_depth.saturating_sub(1);
                }
            });
        }
        _ => {}
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn object_access_hook(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    if let Some(prev) = PREV_OBJECT_ACCESS_HOOK {
        prev(access, class_id, object_id, sub_id, arg);
    }
    if access != pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE {
        return;
    }
    let Some((trusted, cached)) = with_state(|s| (s.trusted_depth > 0, s.expression_verdicts.get(&object_id).cloned()))
    else {
        return;
    };
    if trusted {
        return;
    }
    let verdict = cached.unwrap_or_else(|| {
        let (allowed, vetted) =
            with_state(|s| (s.allowed.clone(), s.phase == Phase::Execution && s.vetted.contains(&object_id)))
                .unwrap_or_default();
        let v = expression_verdict(object_id, &allowed, vetted);
        with_state(|s| s.expression_verdicts.insert(object_id, v.clone()));
        v
    });
    if let Some(reason) = verdict {
        refuse(Refusal::ForeignCode, reason);
    }
}
