//! Checks the analysed and rewritten query trees of a prepared plan before it runs: exactly one
//! plain SELECT, no row locks, no data-modifying CTE, and only functions the policy allows
//! (sqlchat_core::policy), looked up in every subquery, CTE, view body and range-table function.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_void, CStr};

struct Walk<'a> {
    allowed: &'a [String],
    refusal: Option<String>,
    /// Tables read whose row-level security the caller bypasses.
    rls_bypassed: Vec<String>,
}

/// Ok(tables whose RLS the caller bypasses) or Err(why the plan is refused).
pub unsafe fn check_plan(plan: pg_sys::SPIPlanPtr, allowed: &[String]) -> Result<Vec<String>, String> {
    let sources = pgrx::PgList::<pg_sys::CachedPlanSource>::from_pg(pg_sys::SPI_plan_get_plan_sources(plan));
    if sources.len() != 1 {
        return Err(format!("exactly one statement is allowed, got {}", sources.len()));
    }
    let source = sources.get_ptr(0).ok_or("no statement")?;
    let queries = pgrx::PgList::<pg_sys::Query>::from_pg((*source).query_list);
    if queries.len() != 1 {
        return Err("the statement expands into several statements (a rule?)".into());
    }
    let mut walk = Walk { allowed, refusal: None, rls_bypassed: Vec::new() };
    let query = queries.get_ptr(0).ok_or("no query")?;
    check_query(query, &mut walk);
    match walk.refusal {
        Some(reason) => Err(reason),
        None => {
            walk.rls_bypassed.sort();
            walk.rls_bypassed.dedup();
            Ok(walk.rls_bypassed)
        }
    }
}

unsafe fn check_query(query: *mut pg_sys::Query, walk: &mut Walk) -> bool {
    let q = &*query;
    if q.commandType != pg_sys::CmdType::CMD_SELECT || !q.utilityStmt.is_null() {
        walk.refusal = Some("only a SELECT is allowed".into());
        return true;
    }
    if !q.rowMarks.is_null() {
        walk.refusal = Some("SELECT ... FOR UPDATE/SHARE is not allowed".into());
        return true;
    }
    if q.hasModifyingCTE {
        walk.refusal = Some("a data-modifying WITH clause is not allowed".into());
        return true;
    }
    pg_sys::query_tree_walker(
        query,
        Some(walker),
        walk as *mut Walk as *mut c_void,
        pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
    )
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    let walk = &mut *(ctx as *mut Walk);
    if walk.refusal.is_some() {
        return true;
    }
    match (*node).type_ {
        pg_sys::NodeTag::T_Query => return check_query(node as *mut pg_sys::Query, walk),
        pg_sys::NodeTag::T_RangeTblEntry => {
            let rte = &*(node as *mut pg_sys::RangeTblEntry);
            if rte.rtekind == pg_sys::RTEKind::RTE_RELATION {
                check_relation(rte.relid, walk);
            }
            return walk.refusal.is_some();
        }
        pg_sys::NodeTag::T_CoerceToDomain => {
            // Domain CHECK constraints may call any function.
            let c = &*(node as *mut pg_sys::CoerceToDomain);
            if !is_builtin_type(c.resulttype) {
                walk.refusal = Some("casting to a user-defined domain is not allowed".into());
                return true;
            }
        }
        pg_sys::NodeTag::T_NextValueExpr => {
            walk.refusal = Some("reading a sequence is not allowed".into());
            return true;
        }
        _ => {}
    }
    if pg_sys::check_functions_in_node(node, Some(function_checker), ctx) {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(walker), ctx)
}

#[pg_guard]
unsafe extern "C-unwind" fn function_checker(funcid: pg_sys::Oid, ctx: *mut c_void) -> bool {
    let walk = &mut *(ctx as *mut Walk);
    let name = cstr(pg_sys::get_func_name(funcid));
    let schema = cstr(pg_sys::get_namespace_name(pg_sys::get_func_namespace(funcid)));
    let volatility = pg_sys::func_volatile(funcid) as u8 as char;
    match sqlchat_core::policy::function_refusal(&schema, &name, volatility, walk.allowed) {
        Some(reason) => {
            walk.refusal = Some(reason);
            true
        }
        None => false,
    }
}

unsafe fn check_relation(relid: pg_sys::Oid, walk: &mut Walk) {
    let schema = cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)));
    let name = cstr(pg_sys::get_rel_name(relid));
    if schema == "sqlchat" {
        walk.refusal = Some("sqlchat's own tables cannot be queried by generated SQL".into());
        return;
    }
    if schema == "pg_catalog" && (name == "pg_authid" || name == "pg_shadow" || name == "pg_user_mapping") {
        walk.refusal = Some(format!("reading {schema}.{name} is not allowed"));
        return;
    }
    if pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true) == pg_sys::CheckEnableRlsResult::RLS_NONE_ENV as i32 {
        walk.rls_bypassed.push(format!("{schema}.{name}"));
    }
}

unsafe fn is_builtin_type(typid: pg_sys::Oid) -> bool {
    u32::from(typid) < pg_sys::FirstNormalObjectId
}

unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
