//! Checks the analysed and rewritten query trees of a prepared plan before it is planned or run:
//! exactly one plain SELECT, no row locks, no data-modifying CTE, and only functions the policy
//! allows (sqlchat_core::policy), looked up everywhere the executor may call one: expressions,
//! operators, casts and type I/O (check_functions_in_node), sort/group/distinct operators,
//! aggregate support functions, TABLESAMPLE methods, every subquery, CTE, view body and range-table
//! function. Relations: sqlchat's own tables and catalogs holding secrets or settings are refused;
//! tables whose row-level security the reading role bypasses are reported.
//!
//! Code other roles wrote that the statement reaches without naming it is looked at too, by who
//! wrote it (see trust.rs): row-level security policies (the table owner's), domains' CHECK
//! constraints and range types' support functions (found from the types the statement's
//! expressions produce). Written by a role with the caller's privileges, its functions are vetted
//! to run; otherwise a policy must pass the function policy for filters, a range type's support
//! function is refused, and a domain's CHECK is left to the hooks (it runs only if a value is
//! converted into the domain).
//!
//! The walk is bounded: nesting deeper than the stack allows is refused without raising an ERROR
//! through the nested frames, and a pending interrupt stops it at once.

use super::trust::{cstr, function_info, is_builtin, role_name, trusted_owner};
use crate::compat;
use pgrx::pg_sys;
use pgrx::prelude::*;
use sqlchat_core::error::Refusal;
use sqlchat_core::policy::{self, Origin};
use std::collections::HashSet;
use std::ffi::{c_void, CStr};

/// Nodes walked between two looks at the interrupt flag.
const INTERRUPT_EVERY: u64 = 1024;
/// Deepest nesting walked even where the stack would allow more.
const MAX_DEPTH: u32 = 10_000;

/// Who wrote the expressions being walked, and so what happens to the functions they call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Author {
    /// The model (or a view): every function must pass the policy.
    Generated,
    /// A row-level security policy of a table whose owner lacks the caller's privileges: same
    /// policy, refused as foreign code.
    UntrustedPolicy { table: pg_sys::Oid, owner: pg_sys::Oid },
    /// A role with the caller's privileges: its functions are vetted to run.
    Trusted,
}

struct Walk<'a> {
    allowed: &'a [String],
    caller: pg_sys::Oid,
    author: Author,
    refusal: Option<(Refusal, String)>,
    /// Tables read whose row-level security the reading role bypasses.
    rls_bypassed: Vec<String>,
    /// Functions of trusted policies and domains, allowed to run during execution.
    vetted: HashSet<pg_sys::Oid>,
    /// User-defined aggregates whose support functions still need a decision, and whether they
    /// came from trusted code.
    aggregates: Vec<(pg_sys::Oid, bool)>,
    /// User-defined types the statement's expressions produce.
    types: HashSet<pg_sys::Oid>,
    /// User-defined types of operators' operands (the planner estimates their selectivity, which
    /// for a range type calls its subtype_diff).
    operand_types: HashSet<pg_sys::Oid>,
    /// The relations read with SELECT and the columns read of each.
    reads: Vec<Read>,
    depth: u32,
    nodes: u64,
    interrupted: bool,
}

/// A relation the statement reads, the columns it reads (0: the whole row), and whether its
/// privileges are checked for the caller (not for the owner of a view it was reached through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub relid: pg_sys::Oid,
    pub columns: Vec<i16>,
    pub as_caller: bool,
}

impl Walk<'_> {
    fn refuse(&mut self, kind: Refusal, reason: impl Into<String>) -> bool {
        if self.refusal.is_none() {
            self.refusal = Some((kind, reason.into()));
        }
        true
    }
}

/// What the guard found: tables whose RLS the caller bypasses, and the functions vetted to run.
pub struct Verdict {
    pub rls_bypassed: Vec<String>,
    pub vetted: HashSet<pg_sys::Oid>,
    pub reads: Vec<Read>,
}

/// Ok(verdict) or Err(why the plan is refused). SPI must be connected.
pub unsafe fn check_plan(plan: pg_sys::SPIPlanPtr, allowed: &[String]) -> Result<Verdict, (Refusal, String)> {
    let sources = pgrx::PgList::<pg_sys::CachedPlanSource>::from_pg(pg_sys::SPI_plan_get_plan_sources(plan));
    if sources.len() != 1 {
        return Err((Refusal::Statement, format!("exactly one statement is allowed, got {}", sources.len())));
    }
    let source = sources.get_ptr(0).ok_or((Refusal::Statement, "no statement".to_string()))?;
    let queries = pgrx::PgList::<pg_sys::Query>::from_pg((*source).query_list);
    if queries.len() != 1 {
        return Err((Refusal::Statement, "the statement expands into several statements (a rule?)".into()));
    }
    let mut walk = Walk {
        allowed,
        caller: pg_sys::GetUserId(),
        author: Author::Generated,
        refusal: None,
        rls_bypassed: Vec::new(),
        vetted: HashSet::new(),
        aggregates: Vec::new(),
        types: HashSet::new(),
        operand_types: HashSet::new(),
        reads: Vec::new(),
        depth: 0,
        nodes: 0,
        interrupted: false,
    };
    let query = queries.get_ptr(0).ok_or((Refusal::Statement, "no query".to_string()))?;
    check_query(query, &mut walk);
    if walk.interrupted {
        // Raised here, a few frames deep, rather than from inside the walk.
        pgrx::check_for_interrupts!();
    }
    if walk.refusal.is_none() {
        for (agg, trusted) in std::mem::take(&mut walk.aggregates) {
            check_aggregate_support(agg, trusted, &mut walk);
        }
    }
    if walk.refusal.is_none() {
        check_types(&mut walk);
    }
    match walk.refusal {
        Some(refusal) => Err(refusal),
        None => {
            walk.rls_bypassed.sort();
            walk.rls_bypassed.dedup();
            Ok(Verdict { rls_bypassed: walk.rls_bypassed, vetted: walk.vetted, reads: walk.reads })
        }
    }
}

/// The planner's estimated total cost of the plan that will run (planned once here, reused by
/// the cursor since a statement without parameters always gets the generic plan).
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
        if check_rte(q, rte, walk) {
            return true;
        }
    }
    false
}

unsafe fn check_rte(q: &pg_sys::Query, rte: *mut pg_sys::RangeTblEntry, walk: &mut Walk) -> bool {
    let r = &*rte;
    let ctx = walk as *mut Walk as *mut c_void;
    note_types(r.coltypes, walk);
    match r.rtekind {
        pg_sys::RTEKind::RTE_RELATION => {
            let check_as = compat::check_as_user(q, r);
            if let Some(columns) = compat::selected_columns(q, r) {
                let as_caller = check_as == pg_sys::InvalidOid || check_as == walk.caller;
                walk.reads.push(Read { relid: r.relid, columns, as_caller });
            }
            check_relation(r.relid, check_as, walk);
            walker(r.tablesample as *mut pg_sys::Node, ctx) || check_security_quals(r, walk)
        }
        pg_sys::RTEKind::RTE_SUBQUERY => !r.subquery.is_null() && check_query(r.subquery, walk),
        pg_sys::RTEKind::RTE_FUNCTION => {
            for f in pgrx::PgList::<pg_sys::RangeTblFunction>::from_pg(r.functions).iter_ptr() {
                note_types((*f).funccoltypes, walk);
            }
            walker(r.functions as *mut pg_sys::Node, ctx)
        }
        pg_sys::RTEKind::RTE_TABLEFUNC => walker(r.tablefunc as *mut pg_sys::Node, ctx),
        pg_sys::RTEKind::RTE_VALUES => walker(r.values_lists as *mut pg_sys::Node, ctx),
        pg_sys::RTEKind::RTE_JOIN => walker(r.joinaliasvars as *mut pg_sys::Node, ctx),
        // CTE bodies are walked through the query's cteList; the rest hold no expressions.
        _ => walk.refusal.is_some(),
    }
}

/// Row-level security policies the rewriter attached to a table: its owner's code, run with the
/// caller's rights.
unsafe fn check_security_quals(r: &pg_sys::RangeTblEntry, walk: &mut Walk) -> bool {
    if r.securityQuals.is_null() {
        return false;
    }
    let owner = relation_owner(r.relid);
    let saved = walk.author;
    walk.author = if trusted_owner(owner, walk.caller) {
        Author::Trusted
    } else {
        Author::UntrustedPolicy { table: r.relid, owner }
    };
    let stop = walker(r.securityQuals as *mut pg_sys::Node, walk as *mut Walk as *mut c_void);
    walk.author = saved;
    stop
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    let walk = &mut *(ctx as *mut Walk);
    if walk.refusal.is_some() || walk.interrupted {
        return true;
    }
    walk.nodes += 1;
    if walk.nodes.is_multiple_of(INTERRUPT_EVERY) && pg_sys::InterruptPending != 0 {
        walk.interrupted = true;
        return true;
    }
    if walk.depth >= MAX_DEPTH || pg_sys::stack_is_too_deep() {
        return walk.refuse(Refusal::Malformed, "the statement is nested too deeply to be checked");
    }
    walk.depth += 1;
    let stop = visit(node, walk, ctx);
    walk.depth -= 1;
    stop
}

unsafe fn visit(node: *mut pg_sys::Node, walk: &mut Walk, ctx: *mut c_void) -> bool {
    match (*node).type_ {
        pg_sys::NodeTag::T_Query => return check_query(node as *mut pg_sys::Query, walk),
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
        pg_sys::NodeTag::T_Aggref => note_aggregate((*(node as *mut pg_sys::Aggref)).aggfnoid, walk),
        pg_sys::NodeTag::T_WindowFunc => {
            let w = &*(node as *mut pg_sys::WindowFunc);
            if w.winagg {
                note_aggregate(w.winfnoid, walk);
            }
        }
        _ => {}
    }
    if produces_value(node) {
        let typ = pg_sys::exprType(node);
        if !is_builtin(typ) {
            walk.types.insert(typ);
        }
    }
    if let Some(args) = operator_args(node) {
        for arg in pgrx::PgList::<pg_sys::Node>::from_pg(args).iter_ptr() {
            let typ = pg_sys::exprType(arg);
            if !is_builtin(typ) {
                walk.operand_types.insert(typ);
            }
        }
    }
    if pg_sys::check_functions_in_node(node, Some(function_checker), ctx) {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(walker), ctx)
}

/// Expression nodes `exprType` knows (it raises an ERROR on others, such as lists and clauses).
unsafe fn produces_value(node: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    matches!(
        (*node).type_,
        T_Var
            | T_Const
            | T_Param
            | T_Aggref
            | T_WindowFunc
            | T_SubscriptingRef
            | T_FuncExpr
            | T_OpExpr
            | T_DistinctExpr
            | T_NullIfExpr
            | T_FieldSelect
            | T_FieldStore
            | T_RelabelType
            | T_CoerceViaIO
            | T_ArrayCoerceExpr
            | T_ConvertRowtypeExpr
            | T_CollateExpr
            | T_CaseExpr
            | T_CaseTestExpr
            | T_ArrayExpr
            | T_RowExpr
            | T_CoalesceExpr
            | T_MinMaxExpr
            | T_CoerceToDomain
            | T_CoerceToDomainValue
            | T_SetToDefault
    )
}

/// The arguments of an operator call the planner may estimate the selectivity of.
unsafe fn operator_args(node: *mut pg_sys::Node) -> Option<*mut pg_sys::List> {
    match (*node).type_ {
        pg_sys::NodeTag::T_OpExpr | pg_sys::NodeTag::T_DistinctExpr | pg_sys::NodeTag::T_NullIfExpr => {
            Some((*(node as *mut pg_sys::OpExpr)).args)
        }
        pg_sys::NodeTag::T_ScalarArrayOpExpr => Some((*(node as *mut pg_sys::ScalarArrayOpExpr)).args),
        _ => None,
    }
}

unsafe fn note_types(list: *mut pg_sys::List, walk: &mut Walk) {
    for typ in oid_list(list) {
        if !is_builtin(typ) {
            walk.types.insert(typ);
        }
    }
}

unsafe fn oid_list(list: *mut pg_sys::List) -> Vec<pg_sys::Oid> {
    if list.is_null() {
        return Vec::new();
    }
    let l = &*list;
    (0..l.length.max(0) as usize).map(|i| (*l.elements.add(i)).oid_value).collect()
}

/// Built-in aggregates have built-in support functions; others are decided after the walk.
fn note_aggregate(aggfnoid: pg_sys::Oid, walk: &mut Walk) {
    let trusted = walk.author == Author::Trusted;
    if !is_builtin(aggfnoid) && !walk.aggregates.contains(&(aggfnoid, trusted)) {
        walk.aggregates.push((aggfnoid, trusted));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn function_checker(funcid: pg_sys::Oid, ctx: *mut c_void) -> bool {
    check_function(funcid, &mut *(ctx as *mut Walk))
}

unsafe fn check_function(funcid: pg_sys::Oid, walk: &mut Walk) -> bool {
    if walk.author == Author::Trusted {
        walk.vetted.insert(funcid);
        return false;
    }
    let Some(f) = function_info(funcid) else {
        return walk.refuse(Refusal::Function, format!("function {funcid} could not be looked up"));
    };
    let origin = match walk.author {
        Author::UntrustedPolicy { .. } => Origin::Filter,
        _ => Origin::Query,
    };
    let Some(reason) =
        policy::function_refusal(origin, &f.schema, &f.name, f.volatility, is_builtin(funcid), walk.allowed)
    else {
        return false;
    };
    match walk.author {
        Author::UntrustedPolicy { table, owner } => walk.refuse(
            Refusal::ForeignCode,
            format!(
                "a row-level security policy on {} (owned by role {}) calls {}, which sqlchat does not run with the rights of role {}",
                relation_name(table),
                role_name(owner),
                f.qualified(),
                role_name(walk.caller)
            ),
        ),
        _ => walk.refuse(Refusal::Function, reason),
    }
}

/// Transition, final, combine, (de)serialisation and moving-aggregate functions of a user-defined
/// aggregate run as the caller too.
unsafe fn check_aggregate_support(aggfnoid: pg_sys::Oid, trusted: bool, walk: &mut Walk) {
    const SUPPORT: &CStr = c"SELECT f::pg_catalog.oid FROM pg_catalog.pg_aggregate, LATERAL (VALUES \
        (aggtransfn), (aggfinalfn), (aggcombinefn), (aggserialfn), (aggdeserialfn), (aggmtransfn), \
        (aggminvtransfn), (aggmfinalfn)) v(f) \
        WHERE aggfnoid OPERATOR(pg_catalog.=) $1 AND f::pg_catalog.oid OPERATOR(pg_catalog.<>) 0";
    let Some(rows) = spi_rows(SUPPORT, &[(pg_sys::OIDOID, pg_sys::Datum::from(aggfnoid))], 1) else {
        walk.refuse(Refusal::Function, "the aggregate's support functions could not be checked");
        return;
    };
    let saved = walk.author;
    if trusted {
        walk.author = Author::Trusted;
    }
    for row in rows {
        if let Some(f) = row[0] {
            if check_function(f, walk) {
                break;
            }
        }
    }
    walk.author = saved;
}

/// The user-defined types reached from the types in $1 (their element, base, attribute, sub- and
/// range types too), and for $2 = 1 the functions their domains' CHECK constraints call (directly
/// or through an operator), for $2 = 2 their range types' subtype_diff and canonical functions.
/// Rows: (domain or range type, its owner, function).
const REACHED_CODE: &CStr = c"WITH RECURSIVE reach(typ) AS ( \
      SELECT t FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS t \
    UNION \
      SELECT n.typ FROM reach r \
      JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) r.typ \
      CROSS JOIN LATERAL ( \
          SELECT ty.typelem WHERE ty.typelem OPERATOR(pg_catalog.<>) 0 \
          UNION ALL SELECT ty.typbasetype WHERE ty.typtype OPERATOR(pg_catalog.=) 'd' \
          UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid OPERATOR(pg_catalog.=) ty.typrelid AND a.attnum OPERATOR(pg_catalog.>) 0 \
                AND NOT a.attisdropped \
          UNION ALL SELECT g.rngsubtype FROM pg_catalog.pg_range g WHERE g.rngtypid OPERATOR(pg_catalog.=) ty.oid \
          UNION ALL SELECT g.rngtypid FROM pg_catalog.pg_range g WHERE g.rngmultitypid OPERATOR(pg_catalog.=) ty.oid \
      ) AS n(typ) \
      WHERE n.typ::pg_catalog.int8 OPERATOR(pg_catalog.>=) 16384 \
  ) \
  SELECT ty.oid, ty.typowner, \
         CASE WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass \
              THEN o.oprcode::pg_catalog.oid ELSE d.refobjid END \
  FROM reach JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) reach.typ \
  JOIN pg_catalog.pg_constraint c ON c.contypid OPERATOR(pg_catalog.=) ty.oid \
  JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass \
       AND d.objid OPERATOR(pg_catalog.=) c.oid \
       AND d.refclassid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc'::pg_catalog.regclass, \
                                                          'pg_catalog.pg_operator'::pg_catalog.regclass]) \
  LEFT JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) d.refobjid \
  WHERE $2 OPERATOR(pg_catalog.=) 1 AND ty.typtype OPERATOR(pg_catalog.=) 'd' \
  UNION ALL \
  SELECT g.rngtypid, ty.typowner, v.f \
  FROM reach JOIN pg_catalog.pg_range g ON g.rngtypid OPERATOR(pg_catalog.=) reach.typ \
  JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) g.rngtypid \
  CROSS JOIN LATERAL (VALUES (g.rngsubdiff::pg_catalog.oid), (g.rngcanonical::pg_catalog.oid)) AS v(f) \
  WHERE $2 OPERATOR(pg_catalog.=) 2 AND v.f OPERATOR(pg_catalog.<>) 0";

/// Domain checks run only when a value is converted into the domain (a literal, a cast, record
/// input), never when a column is read, so an untrusted domain is left to the hooks; a trusted
/// one's functions are vetted. Range support functions run in the planner, from a cache the hooks
/// may not see, whenever an operator's operand has the range type: those are decided here.
unsafe fn check_types(walk: &mut Walk) {
    let reached = [(1, walk.types.iter().copied().collect()), (2, walk.operand_types.iter().copied().collect())];
    for (kind, types) in reached {
        let types: Vec<pg_sys::Oid> = types;
        if types.is_empty() {
            continue;
        }
        let Some(rows) = reached_code(types, kind) else {
            walk.refuse(Refusal::ForeignCode, "the types the statement uses could not be checked");
            return;
        };
        for row in rows {
            let (Some(typ), Some(owner), Some(func)) = (row[0], row[1], row[2]) else { continue };
            if kind == 1 {
                if trusted_owner(owner, walk.caller) {
                    walk.vetted.insert(func);
                }
            } else if check_range_function(typ, func, walk) {
                return;
            }
        }
    }
}

unsafe fn reached_code(types: Vec<pg_sys::Oid>, kind: i32) -> Option<Vec<Vec<Option<pg_sys::Oid>>>> {
    let array = types.into_datum()?;
    spi_rows(REACHED_CODE, &[(pg_sys::OIDARRAYOID, array), (pg_sys::INT4OID, pg_sys::Datum::from(kind))], 3)
}

/// A range type's subtype_diff or canonical function, which the planner and range input call.
unsafe fn check_range_function(range: pg_sys::Oid, func: pg_sys::Oid, walk: &mut Walk) -> bool {
    if is_builtin(func) {
        return false;
    }
    let Some(f) = function_info(func) else { return false };
    if policy::is_listed(&f.schema, &f.name, walk.allowed) || trusted_owner(f.owner, walk.caller) {
        return false;
    }
    walk.refuse(
        Refusal::ForeignCode,
        format!(
            "the statement uses range type {}, whose support function {} belongs to role {}, which does not have the privileges of role {}",
            type_name(range),
            f.qualified(),
            role_name(f.owner),
            role_name(walk.caller)
        ),
    )
}

/// Runs a read-only catalog query with one parameter inside the sandbox's SPI connection; each
/// row's first `columns` values as oids.
unsafe fn spi_rows(
    sql: &CStr,
    params: &[(pg_sys::Oid, pg_sys::Datum)],
    columns: usize,
) -> Option<Vec<Vec<Option<pg_sys::Oid>>>> {
    let mut types: Vec<pg_sys::Oid> = params.iter().map(|p| p.0).collect();
    let mut values: Vec<pg_sys::Datum> = params.iter().map(|p| p.1).collect();
    let rc = pg_sys::SPI_execute_with_args(
        sql.as_ptr(),
        params.len() as i32,
        types.as_mut_ptr(),
        values.as_mut_ptr(),
        std::ptr::null(),
        true,
        0,
    );
    if rc != pg_sys::SPI_OK_SELECT as i32 || pg_sys::SPI_tuptable.is_null() {
        return None;
    }
    let table = pg_sys::SPI_tuptable;
    let mut rows = Vec::with_capacity(pg_sys::SPI_processed as usize);
    for i in 0..pg_sys::SPI_processed as usize {
        let tuple = *(*table).vals.add(i);
        let row = (1..=columns as i32)
            .map(|c| {
                let mut is_null = false;
                let d = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, c, &mut is_null);
                (!is_null).then(|| pg_sys::Oid::from(d.value() as u32))
            })
            .collect();
        rows.push(row);
    }
    pg_sys::SPI_freetuptable(table);
    Some(rows)
}

unsafe fn check_relation(relid: pg_sys::Oid, check_as_user: pg_sys::Oid, walk: &mut Walk) {
    let schema = cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)));
    let name = cstr(pg_sys::get_rel_name(relid));
    if let Some(reason) = policy::relation_refusal(&schema, &name) {
        walk.refuse(Refusal::Relation, reason);
        return;
    }
    // Tables under a view are read with the view owner's rights, so ask about that role.
    if pg_sys::check_enable_rls(relid, check_as_user, true) == pg_sys::CheckEnableRlsResult::RLS_NONE_ENV as i32 {
        walk.rls_bypassed.push(format!("{schema}.{name}"));
    }
}

unsafe fn relation_owner(relid: pg_sys::Oid) -> pg_sys::Oid {
    let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, pg_sys::Datum::from(relid));
    if tuple.is_null() {
        return pg_sys::InvalidOid;
    }
    let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
    pg_sys::ReleaseSysCache(tuple);
    owner
}

unsafe fn relation_name(relid: pg_sys::Oid) -> String {
    format!(
        "{}.{}",
        cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid))),
        cstr(pg_sys::get_rel_name(relid))
    )
}

unsafe fn type_name(typ: pg_sys::Oid) -> String {
    cstr(pg_sys::format_type_be(typ))
}
