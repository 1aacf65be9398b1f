//! Checks the analysed and rewritten query trees of a prepared plan before it runs: exactly one
//! plain SELECT, no row locks, no data-modifying CTE, and only functions the policy allows
//! (sqlchat_core::policy), looked up everywhere the executor may call one: expressions, operators,
//! casts and type I/O (check_functions_in_node), sort/group/distinct operators, aggregate support
//! functions, TABLESAMPLE methods, domain checks, every subquery, CTE, view body and range-table
//! function. Relations: sqlchat's own tables and catalogs holding secrets or settings are refused;
//! tables whose row-level security the reading role bypasses are reported.

use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::error::Refusal;
use std::ffi::{c_void, CStr};

struct Walk<'a> {
    allowed: &'a [String],
    refusal: Option<(Refusal, String)>,
    /// Tables read whose row-level security the reading role bypasses.
    rls_bypassed: Vec<String>,
    /// User-defined aggregates whose support functions still need checking.
    aggregates: Vec<pg_sys::Oid>,
}

impl Walk<'_> {
    fn refuse(&mut self, kind: Refusal, reason: impl Into<String>) -> bool {
        if self.refusal.is_none() {
            self.refusal = Some((kind, reason.into()));
        }
        true
    }
}

/// Ok(tables whose RLS the caller bypasses) or Err(why the plan is refused). SPI must be connected.
pub unsafe fn check_plan(plan: pg_sys::SPIPlanPtr, allowed: &[String]) -> Result<Vec<String>, (Refusal, String)> {
    let sources = pgrx::PgList::<pg_sys::CachedPlanSource>::from_pg(pg_sys::SPI_plan_get_plan_sources(plan));
    if sources.len() != 1 {
        return Err((Refusal::Statement, format!("exactly one statement is allowed, got {}", sources.len())));
    }
    let source = sources.get_ptr(0).ok_or((Refusal::Statement, "no statement".to_string()))?;
    let queries = pgrx::PgList::<pg_sys::Query>::from_pg((*source).query_list);
    if queries.len() != 1 {
        return Err((Refusal::Statement, "the statement expands into several statements (a rule?)".into()));
    }
    let mut walk = Walk { allowed, refusal: None, rls_bypassed: Vec::new(), aggregates: Vec::new() };
    let query = queries.get_ptr(0).ok_or((Refusal::Statement, "no query".to_string()))?;
    check_query(query, &mut walk);
    if walk.refusal.is_none() {
        let aggregates = std::mem::take(&mut walk.aggregates);
        for agg in aggregates {
            check_aggregate_support(agg, &mut walk);
        }
    }
    match walk.refusal {
        Some(reason) => Err(reason),
        None => {
            walk.rls_bypassed.sort();
            walk.rls_bypassed.dedup();
            Ok(walk.rls_bypassed)
        }
    }
}

/// The planner's estimated total cost of the plan that will run (planned once here, reused by
/// SPI_execute_plan since a statement without parameters always gets the generic plan).
pub unsafe fn estimated_cost(plan: pg_sys::SPIPlanPtr) -> Option<f64> {
    let cplan = pg_sys::SPI_plan_get_cached_plan(plan);
    if cplan.is_null() {
        return None;
    }
    let stmts = pgrx::PgList::<pg_sys::PlannedStmt>::from_pg((*cplan).stmt_list);
    let cost = stmts.get_ptr(0).filter(|s| !(**s).planTree.is_null()).map(|s| (*(*s).planTree).total_cost);
    // The plan is not saved, so SPI took the reference without a resource owner.
    pg_sys::ReleaseCachedPlan(cplan, std::ptr::null_mut());
    cost
}

unsafe fn check_query(query: *mut pg_sys::Query, walk: &mut Walk) -> bool {
    let q = &*query;
    if q.commandType != pg_sys::CmdType::CMD_SELECT || !q.utilityStmt.is_null() {
        return walk.refuse(Refusal::Statement, "only a SELECT is allowed");
    }
    if !q.rowMarks.is_null() {
        return walk.refuse(Refusal::Statement, "SELECT ... FOR UPDATE/SHARE is not allowed");
    }
    if q.hasModifyingCTE {
        return walk.refuse(Refusal::Statement, "a data-modifying WITH clause is not allowed");
    }
    let flags = (pg_sys::QTW_IGNORE_RANGE_TABLE | pg_sys::QTW_EXAMINE_SORTGROUP) as i32;
    if pg_sys::query_tree_walker(query, Some(walker), walk as *mut Walk as *mut c_void, flags) {
        return true;
    }
    let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg(q.rtable);
    for rte in rtable.iter_ptr() {
        if check_rte(rte, walk) {
            return true;
        }
    }
    false
}

/// One range-table entry. Its securityQuals are left out on purpose: row-level security policies
/// are the table owner's code, applied to every query the caller runs, not something the model wrote.
unsafe fn check_rte(rte: *mut pg_sys::RangeTblEntry, walk: &mut Walk) -> bool {
    let r = &*rte;
    let ctx = walk as *mut Walk as *mut c_void;
    match r.rtekind {
        pg_sys::RTEKind::RTE_RELATION => {
            check_relation(r.relid, r.checkAsUser, walk);
            walker(r.tablesample as *mut pg_sys::Node, ctx)
        }
        pg_sys::RTEKind::RTE_SUBQUERY => !r.subquery.is_null() && check_query(r.subquery, walk),
        pg_sys::RTEKind::RTE_FUNCTION => walker(r.functions as *mut pg_sys::Node, ctx),
        pg_sys::RTEKind::RTE_TABLEFUNC => walker(r.tablefunc as *mut pg_sys::Node, ctx),
        pg_sys::RTEKind::RTE_VALUES => walker(r.values_lists as *mut pg_sys::Node, ctx),
        pg_sys::RTEKind::RTE_JOIN => walker(r.joinaliasvars as *mut pg_sys::Node, ctx),
        // CTE bodies are walked through the query's cteList; the rest hold no expressions.
        _ => walk.refusal.is_some(),
    }
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
        pg_sys::NodeTag::T_CoerceToDomain => {
            // Domain CHECK constraints may call any function.
            let c = &*(node as *mut pg_sys::CoerceToDomain);
            if !is_builtin(c.resulttype) {
                return walk.refuse(Refusal::ForeignCode, "casting to a user-defined domain is not allowed");
            }
        }
        pg_sys::NodeTag::T_NextValueExpr => return walk.refuse(Refusal::Function, "reading a sequence is not allowed"),
        pg_sys::NodeTag::T_SortGroupClause => {
            // ORDER BY, GROUP BY, DISTINCT and window clauses call these operators' functions.
            let s = &*(node as *mut pg_sys::SortGroupClause);
            for op in [s.sortop, s.eqop] {
                if op != pg_sys::InvalidOid && check_function(pg_sys::get_opcode(op), walk) {
                    return true;
                }
            }
            return false;
        }
        pg_sys::NodeTag::T_TableSampleClause => {
            let t = &*(node as *mut pg_sys::TableSampleClause);
            // The built-in SYSTEM and BERNOULLI methods only read; others run their handler's code.
            if !is_builtin(t.tsmhandler) && check_function(t.tsmhandler, walk) {
                return true;
            }
        }
        pg_sys::NodeTag::T_Aggref => {
            let a = &*(node as *mut pg_sys::Aggref);
            note_aggregate(a.aggfnoid, walk);
        }
        pg_sys::NodeTag::T_WindowFunc => {
            let w = &*(node as *mut pg_sys::WindowFunc);
            if w.winagg {
                note_aggregate(w.winfnoid, walk);
            }
        }
        _ => {}
    }
    if pg_sys::check_functions_in_node(node, Some(function_checker), ctx) {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(walker), ctx)
}

/// Built-in aggregates have built-in support functions; others are checked after the walk.
fn note_aggregate(aggfnoid: pg_sys::Oid, walk: &mut Walk) {
    if !is_builtin(aggfnoid) && !walk.aggregates.contains(&aggfnoid) {
        walk.aggregates.push(aggfnoid);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn function_checker(funcid: pg_sys::Oid, ctx: *mut c_void) -> bool {
    check_function(funcid, &mut *(ctx as *mut Walk))
}

unsafe fn check_function(funcid: pg_sys::Oid, walk: &mut Walk) -> bool {
    let name = cstr(pg_sys::get_func_name(funcid));
    let schema = cstr(pg_sys::get_namespace_name(pg_sys::get_func_namespace(funcid)));
    let volatility = pg_sys::func_volatile(funcid) as u8 as char;
    match sqlchat_core::policy::function_refusal(&schema, &name, volatility, is_builtin(funcid), walk.allowed) {
        Some(reason) => walk.refuse(Refusal::Function, reason),
        None => false,
    }
}

/// Transition, final, combine, (de)serialisation and moving-aggregate functions of a user-defined
/// aggregate run as the caller too.
unsafe fn check_aggregate_support(aggfnoid: pg_sys::Oid, walk: &mut Walk) {
    const SUPPORT: &CStr = c"SELECT f::pg_catalog.oid FROM pg_catalog.pg_aggregate, LATERAL (VALUES \
        (aggtransfn), (aggfinalfn), (aggcombinefn), (aggserialfn), (aggdeserialfn), (aggmtransfn), \
        (aggminvtransfn), (aggmfinalfn)) v(f) \
        WHERE aggfnoid OPERATOR(pg_catalog.=) $1 AND f::pg_catalog.oid OPERATOR(pg_catalog.<>) 0";
    let mut types = [pg_sys::OIDOID];
    let mut values = [pg_sys::Datum::from(aggfnoid)];
    let rc = pg_sys::SPI_execute_with_args(
        SUPPORT.as_ptr(),
        1,
        types.as_mut_ptr(),
        values.as_mut_ptr(),
        std::ptr::null(),
        true,
        0,
    );
    if rc != pg_sys::SPI_OK_SELECT as i32 || pg_sys::SPI_tuptable.is_null() {
        walk.refuse(Refusal::Function, "the aggregate's support functions could not be checked");
        return;
    }
    let table = pg_sys::SPI_tuptable;
    let mut funcs = Vec::new();
    for i in 0..pg_sys::SPI_processed as usize {
        let mut is_null = false;
        let d = pg_sys::SPI_getbinval(*(*table).vals.add(i), (*table).tupdesc, 1, &mut is_null);
        if !is_null {
            funcs.push(pg_sys::Oid::from(d.value() as u32));
        }
    }
    pg_sys::SPI_freetuptable(table);
    for f in funcs {
        if check_function(f, walk) {
            return;
        }
    }
}

unsafe fn check_relation(relid: pg_sys::Oid, check_as_user: pg_sys::Oid, walk: &mut Walk) {
    let schema = cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)));
    let name = cstr(pg_sys::get_rel_name(relid));
    if let Some(reason) = sqlchat_core::policy::relation_refusal(&schema, &name) {
        walk.refuse(Refusal::Relation, reason);
        return;
    }
    // Tables under a view are read with the view owner's rights, so ask about that role.
    if pg_sys::check_enable_rls(relid, check_as_user, true) == pg_sys::CheckEnableRlsResult::RLS_NONE_ENV as i32 {
        walk.rls_bypassed.push(format!("{schema}.{name}"));
    }
}

fn is_builtin(oid: pg_sys::Oid) -> bool {
    u32::from(oid) < pg_sys::FirstNormalObjectId
}

unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
