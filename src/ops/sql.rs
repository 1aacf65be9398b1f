//! The operations' SQL functions (the views over them are in sql/ops.sql).

use super::{quota, shmem, stats};
use crate::catalog;
use crate::error::{raise, OrRaise};
use crate::exec::{self, Limits as ExecLimits};
use crate::gucs;
use crate::store::{self, cache, memory, Caller};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use sqlchat_core::error::Error;
use sqlchat_core::offline::Probe;
use sqlchat_core::ops::metrics::{self, Series};
use sqlchat_core::ops::stats::{Counters, ENGINES, ERROR_CLASSES, LATENCY_BOUNDS_MS, PURPOSES};
use sqlchat_core::pipeline::{self, Request};
use sqlchat_core::result::ResultSet;
use std::ffi::{CStr, CString};

fn require_shared_memory(what: &str) {
    if !shmem::available() {
        raise(Error::NotPreloaded { what: what.to_string() });
    }
}

fn is_superuser() -> bool {
    unsafe { pg_sys::superuser() }
}

/// Superusers and members of pg_read_all_stats (pg_monitor includes it) see every role's figures.
fn reads_all_stats() -> bool {
    is_superuser()
        || unsafe {
            let role = pg_sys::get_role_oid(c"pg_read_all_stats".as_ptr(), true);
            role != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), role)
        }
}

fn require_superuser(what: &str) {
    if !is_superuser() {
        raise(Error::Privileged { what: what.into(), role: Caller::current().name, hint: "Ask a superuser.".into() });
    }
}

fn database_name(oid: u32) -> Option<String> {
    unsafe {
        let p = pg_sys::get_database_name(pg_sys::Oid::from(oid));
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

fn role_name(oid: u32) -> Option<String> {
    unsafe {
        let p = pg_sys::GetUserNameFromId(pg_sys::Oid::from(oid), true);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

/// The rows the caller may see: all for superusers and pg_read_all_stats, else its own role's.
fn visible_stats() -> (Vec<(u32, u32, Counters)>, i64) {
    let (rows, reset) = stats::snapshot().unwrap_or_default();
    let me = unsafe { pg_sys::GetUserId().to_u32() };
    let all = reads_all_stats();
    (rows.into_iter().filter(|(_, role, _)| all || *role == me).collect(), reset)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn object<const N: usize, T: Copy + Into<Value>>(names: [&str; N], values: [T; N]) -> JsonB {
    JsonB(Value::Object(names.iter().zip(values).map(|(k, v)| (k.to_string(), v.into())).collect::<Map<_, _>>()))
}

type StatsRow = (
    name!(datname, Option<String>),
    name!(rolname, Option<String>),
    name!(asks, i64),
    name!(answers_llm, i64),
    name!(answers_offline, i64),
    name!(answers_verified, i64),
    name!(answers_cache, i64),
    name!(errors, i64),
    name!(errors_by_class, JsonB),
    name!(llm_requests, JsonB),
    name!(llm_failures, i64),
    name!(prompt_tokens, i64),
    name!(completion_tokens, i64),
    name!(prompt_tokens_estimated, i64),
    name!(completion_tokens_estimated, i64),
    name!(gateway_ms, f64),
    name!(sql_ms, f64),
    name!(total_ms, f64),
    name!(latency_ms_histogram, JsonB),
    name!(stats_reset, Option<TimestampWithTimeZone>),
    name!(log_records_dropped, i64),
);

/// The statistics per database and role, as the `sqlchat.stats` view shows them.
// pgrx reads the column names from the `name!` types in this signature, so they cannot move into a
// type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(name = "stats_snapshot")]
fn stats_snapshot() -> TableIterator<
    'static,
    (
        name!(datname, Option<String>),
        name!(rolname, Option<String>),
        name!(asks, i64),
        name!(answers_llm, i64),
        name!(answers_offline, i64),
        name!(answers_verified, i64),
        name!(answers_cache, i64),
        name!(errors, i64),
        name!(errors_by_class, JsonB),
        name!(llm_requests, JsonB),
        name!(llm_failures, i64),
        name!(prompt_tokens, i64),
        name!(completion_tokens, i64),
        name!(prompt_tokens_estimated, i64),
        name!(completion_tokens_estimated, i64),
        name!(gateway_ms, f64),
        name!(sql_ms, f64),
        name!(total_ms, f64),
        name!(latency_ms_histogram, JsonB),
        name!(stats_reset, Option<TimestampWithTimeZone>),
        name!(log_records_dropped, i64),
    ),
> {
    require_shared_memory("sqlchat.stats");
    let (rows, reset) = visible_stats();
    let reset = (reset != 0).then(|| TimestampWithTimeZone::try_from(reset).ok()).flatten();
    let engine_names: [&str; 4] = ENGINES;
    debug_assert_eq!(engine_names.len(), 4);
    let purposes: [&str; 6] = PURPOSES.map(|p| p.as_str());
    let mut bounds: Vec<String> = LATENCY_BOUNDS_MS.iter().map(|b| b.to_string()).collect();
    bounds.push("+Inf".into());
    let out: Vec<StatsRow> = rows
        .into_iter()
        .map(|(db, role, c)| {
            let (db, role) = if db == 0 && role == 0 { (None, None) } else { (database_name(db), role_name(role)) };
            let histogram: Map<String, Value> =
                bounds.iter().zip(c.latency).map(|(b, n)| (b.clone(), json!(n))).collect();
            (
                db,
                role,
                c.asks as i64,
                c.answers[0] as i64,
                c.answers[1] as i64,
                c.answers[2] as i64,
                c.answers[3] as i64,
                c.errors_total() as i64,
                object(ERROR_CLASSES, c.errors),
                object(purposes, c.llm_requests),
                c.llm_failures as i64,
                c.prompt_tokens as i64,
                c.completion_tokens as i64,
                c.prompt_tokens_estimated as i64,
                c.completion_tokens_estimated as i64,
                ms(c.gateway_us),
                ms(c.sql_us),
                ms(c.ask_us),
                JsonB(Value::Object(histogram)),
                reset,
                c.log_dropped as i64,
            )
        })
        .collect();
    TableIterator::new(out)
}

/// Zeroes the statistics (not the quota usage); superusers only.
#[pg_extern]
fn stats_reset() {
    require_shared_memory("sqlchat.stats_reset()");
    require_superuser("sqlchat.stats_reset()");
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    shmem::with(|s| s.reset_stats(now));
}

/// The statistics in the Prometheus text exposition format, for a scraper (postgres_exporter's
/// custom queries, or any HTTP bridge). Superusers and members of pg_read_all_stats / pg_monitor.
#[pg_extern]
fn metrics() -> String {
    require_shared_memory("sqlchat.metrics()");
    if !reads_all_stats() {
        raise(Error::Privileged {
            what: "sqlchat.metrics()".into(),
            role: Caller::current().name,
            hint: "GRANT pg_monitor (or pg_read_all_stats) to the role that scrapes the metrics.".into(),
        });
    }
    let (rows, _) = visible_stats();
    let names: Vec<(String, String, Counters)> = rows
        .into_iter()
        .map(|(db, role, c)| {
            let name = |n: Option<String>, oid: u32| {
                n.unwrap_or_else(|| if oid == 0 { "(other)".into() } else { oid.to_string() })
            };
            (name(database_name(db), db), name(role_name(role), role), c)
        })
        .collect();
    let series: Vec<Series> = names.iter().map(|(d, r, c)| Series { database: d, role: r, counters: c }).collect();
    metrics::render(&series)
}

/// Sets a role's quota in this database: asks per hour and tokens per day (NULL: no limit of
/// that kind; both NULL removes the quota). role_name NULL sets the default quota, for roles
/// that no quota covers. Superusers only.
#[pg_extern]
fn set_quota(role_name: Option<&str>, asks_per_hour: Option<i32>, tokens_per_day: Option<i64>) {
    require_shared_memory("sqlchat.set_quota()");
    require_superuser("sqlchat.set_quota()");
    if asks_per_hour.is_some_and(|n| n < 0) || tokens_per_day.is_some_and(|n| n < 0) {
        raise(Error::InvalidArgument {
            what: "quota limits must not be negative".into(),
            hint: "Pass a number of asks per hour and of tokens per day, or NULL for no limit.".into(),
        });
    }
    let (oid, name) = match role_name {
        None => (pg_sys::InvalidOid, "(default)".to_string()),
        Some(n) => {
            let c = CString::new(n).unwrap_or_default();
            let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
            if oid == pg_sys::InvalidOid {
                raise(Error::InvalidArgument {
                    what: format!("role \"{n}\" does not exist"),
                    hint: "Pass an existing role's name, or NULL for the default quota.".into(),
                });
            }
            (oid, n.to_string())
        }
    };
    // As int8: pgrx passes the oid 0 (the default quota) as NULL.
    let role_key = i64::from(oid.to_u32());
    let done = store::as_owner("setting a quota", || {
        Spi::connect_mut(|c| {
            if asks_per_hour.is_none() && tokens_per_day.is_none() {
                c.update(
                    "DELETE FROM sqlchat.quota WHERE role_oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
                    None,
                    &[role_key.into()],
                )?;
            } else {
                c.update(
                    "INSERT INTO sqlchat.quota (role_oid, role_name, asks_per_hour, tokens_per_day) \
                     VALUES ($1::pg_catalog.oid, $2, $3, $4) ON CONFLICT (role_oid) DO UPDATE SET role_name = excluded.role_name, \
                     asks_per_hour = excluded.asks_per_hour, tokens_per_day = excluded.tokens_per_day, \
                     updated_at = pg_catalog.now()",
                    None,
                    &[role_key.into(), name.as_str().into(), asks_per_hour.into(), tokens_per_day.into()],
                )?;
            }
            Ok(())
        })
    });
    if done.is_none() {
        raise(Error::Internal { detail: "the quota could not be stored (see the WARNING)".into() });
    }
    quota::changed();
}

fn timestamp(epoch_s: u64) -> Option<TimestampWithTimeZone> {
    const PG_EPOCH_S: i64 = 946_684_800;
    TimestampWithTimeZone::try_from((epoch_s as i64 - PG_EPOCH_S) * 1_000_000).ok()
}

type QuotaRow = (
    name!(role_name, Option<String>),
    name!(quota_of, Option<String>),
    name!(asks_per_hour, Option<i64>),
    name!(tokens_per_day, Option<i64>),
    name!(asks_this_hour, i64),
    name!(tokens_today, i64),
    name!(asks_reset_at, Option<TimestampWithTimeZone>),
    name!(tokens_reset_at, Option<TimestampWithTimeZone>),
);

/// Quotas defined in this database and every role's use of them, as `sqlchat.quotas` shows them
/// (superusers only). The default quota has a row of its own with role_name NULL.
// pgrx reads the column names from the `name!` types in this signature, so they cannot move into a
// type alias.
#[allow(clippy::type_complexity)]
#[pg_extern]
fn quota_usage() -> TableIterator<
    'static,
    (
        name!(role_name, Option<String>),
        name!(quota_of, Option<String>),
        name!(asks_per_hour, Option<i64>),
        name!(tokens_per_day, Option<i64>),
        name!(asks_this_hour, i64),
        name!(tokens_today, i64),
        name!(asks_reset_at, Option<TimestampWithTimeZone>),
        name!(tokens_reset_at, Option<TimestampWithTimeZone>),
    ),
> {
    require_shared_memory("sqlchat.quotas");
    require_superuser("sqlchat.quotas");
    let definitions = quota::definitions();
    let mut roles: Vec<pg_sys::Oid> =
        definitions.iter().map(|d| d.role_oid).filter(|o| *o != pg_sys::InvalidOid).collect();
    for r in quota::roles_with_usage() {
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    let mut out: Vec<QuotaRow> = Vec::new();
    if let Some(d) = definitions.iter().find(|d| d.role_oid == pg_sys::InvalidOid) {
        let l = d.limits;
        out.push((
            None,
            Some("default".into()),
            l.asks_per_hour.map(|n| n as i64),
            l.tokens_per_day.map(|n| n as i64),
            0,
            0,
            None,
            None,
        ));
    }
    for oid in roles {
        let name = role_name(oid.to_u32()).unwrap_or_else(|| {
            definitions.iter().find(|d| d.role_oid == oid).map(|d| d.role_name.clone()).unwrap_or_default()
        });
        let caller = Caller { oid, name: name.clone() };
        let applies = quota::applicable(&caller, &definitions);
        let usage = quota::usage_of(oid);
        out.push((
            Some(name),
            applies.as_ref().map(|(of, _)| of.clone()),
            applies.as_ref().and_then(|(_, l)| l.asks_per_hour).map(|n| n as i64),
            applies.as_ref().and_then(|(_, l)| l.tokens_per_day).map(|n| n as i64),
            usage.asks as i64,
            usage.tokens as i64,
            timestamp((usage.hour + 1) * 3600),
            timestamp((usage.day + 1) * 86_400),
        ));
    }
    TableIterator::new(out)
}

/// The offline engine's value lookups, run in the sandbox as the caller.
struct SandboxProbe(ExecLimits);

impl Probe for SandboxProbe {
    fn query(&mut self, sql: &str) -> Result<ResultSet, String> {
        exec::run_readonly(sql, self.0).map_err(|f| {
            if f.is_cancel() {
                raise(Error::Cancelled { message: f.message });
            }
            f.message
        })
    }
}

/// What an ask of this question would do, without calling the model or running the SQL: the
/// engine and why, the offline engine's decision, the ranked tables with scores and reasons (and
/// what the budget cut), the prompt's size per part, and whether the cache holds its SQL.
#[pg_extern]
fn explain(question: Option<&str>, session_id: default!(Option<&str>, "NULL")) -> JsonB {
    let question = pipeline::validate_question(question).or_raise();
    let session_id = session_id.map(str::trim).filter(|s| !s.is_empty());
    let visible = catalog::visible_catalog().or_raise();
    if visible.catalog.tables.is_empty() {
        raise(Error::NoVisibleTables);
    }
    let role = Caller::current();
    let context = session_id.map(|s| memory::load(&role, s, gucs::max_history())).unwrap_or_default();
    let opts = crate::api::options(false, crate::api::cache_scope(&gucs::model(), &role));
    // teaching: what an ask would add to the prompt
    let loaded = crate::teach::load();
    let catalog = crate::teach::private::without_values(&visible.catalog, &loaded.teaching.private);
    let request = Request {
        question,
        catalog: &catalog,
        index: Some(&visible.index),
        history: &context.recent,
        summary: context.summary.as_deref(),
        unsummarized: &context.unsummarized,
        teaching: &loaded.teaching,
    };
    let mut probe = SandboxProbe(ExecLimits::from_settings());
    let mut e = sqlchat_core::ops::explain::explain(&request, &opts, &mut probe);
    e.cache.lookup = match (&e.cache.key, gucs::enable_cache()) {
        (_, false) => "off",
        (None, true) => "unknown",
        (Some(key), true) => {
            if cache::get(key, &role).is_some() {
                "hit"
            } else {
                "miss"
            }
        }
    };
    JsonB(serde_json::to_value(&e).unwrap_or(Value::Null))
}
