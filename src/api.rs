//! Every SQL function of the extension. Thin: check arguments, call the pipeline, shape the result.

use crate::catalog;
use crate::error::{guarded, notice, raise, OrRaise};
use crate::exec::Limits;
use crate::gucs;
use crate::host::Backend;
use crate::llm;
use crate::store::{self, cache, memory};
use pgrx::prelude::*;
use pgrx::JsonB;
use sqlchat_core::chart;
use sqlchat_core::openai::Purpose;
use sqlchat_core::pipeline::{self, Engine, Options, Outcome, Request};
use sqlchat_core::prompt::Turn;
use std::time::Instant;

/// `cache_scope` makes cache keys differ per model and role: one role never reuses another's SQL.
pub(crate) fn options(sql_only: bool, cache_scope: String) -> Options {
    Options {
        engine: gucs::engine(),
        generation_temperature: gucs::generation_temperature(),
        summary_temperature: gucs::summary_temperature(),
        max_attempts: gucs::max_attempts(),
        send_rows: gucs::send_rows(),
        schema_budget_tokens: gucs::schema_budget_tokens(),
        examples_budget_tokens: gucs::examples_budget_tokens(),
        sql_only,
        cache_scope,
        ..Options::default()
    }
}

/// The cache scope of a model and role.
pub(crate) fn cache_scope(model: &str, role: &store::Caller) -> String {
    format!("{model}\n{}\n{}", role.oid.to_u32(), role.name)
}

// --- operations: every ask is observed (statistics, quota, slow log) ---
fn run(question: Option<&str>, session_id: Option<&str>, sql_only: bool) -> Outcome {
    crate::ops::observe_ask(question, session_id, || run_pipeline(question, session_id, sql_only))
}

fn run_pipeline(question: Option<&str>, session_id: Option<&str>, sql_only: bool) -> Outcome {
    let question = pipeline::validate_question(question).or_raise();
    let session_id = session_id.map(str::trim).filter(|s| !s.is_empty());
    let read_at = Instant::now();
    let visible = catalog::visible_catalog().or_raise();
    crate::ops::meter::step("catalog", read_at.elapsed());
    let role = store::Caller::current();
    let model = gucs::model();
    let context = session_id.map(|s| memory::load(&role, s, gucs::max_history())).unwrap_or_default();
    let opts = options(sql_only, cache_scope(&model, &role));
    // ---- teaching: what is taught, and no value of a private column in the catalog ----
    let loaded = crate::teach::load();
    let catalog = crate::teach::private::without_values(&visible.catalog, &loaded.teaching.private);
    let mut host = Backend {
        limits: Limits::from_settings(),
        role: role.clone(),
        model,
        cache_ttl_s: gucs::enable_cache().then(gucs::cache_ttl_s),
        private: loaded.private.clone(),
    };
    let request = Request {
        question,
        catalog: &catalog,
        index: Some(&visible.index),
        history: &context.recent,
        summary: context.summary.as_deref(),
        unsummarized: &context.unsummarized,
        teaching: &loaded.teaching,
    };
    let out = pipeline::run(&mut host, &request, &opts).or_raise();
    crate::teach::record_use(out.example_id);
    if let Some(session) = session_id {
        if let Some(summary) = &out.new_summary {
            memory::store_summary(&role, session, summary, context.unsummarized_through);
        }
        let turn = Turn {
            question: question.to_string(),
            sql: out.sql.clone(),
            answer: Some(out.answer.clone()).filter(|a| !a.is_empty()),
        };
        memory::append(&role, session, &turn);
    }
    out
}

/// The answer in words.
#[pg_extern]
fn ask(question: Option<&str>, session_id: default!(Option<&str>, "NULL")) -> String {
    guarded(|| run(question, session_id, false).answer)
}

/// The SQL for a question, not executed. NULL (with a NOTICE saying why) when the question cannot
/// be answered from the schema.
#[pg_extern]
fn generate_sql(question: Option<&str>, session_id: default!(Option<&str>, "NULL")) -> Option<String> {
    guarded(|| {
        let out = run(question, session_id, true);
        if out.sql.is_none() {
            notice(&out.answer);
        }
        out.sql
    })
}

/// Answer, SQL, rows, suggestions and figures of one question.
#[pg_extern]
fn ask_full(
    question: Option<&str>,
    session_id: default!(Option<&str>, "NULL"),
) -> pgrx::composite_type!('static, "sqlchat.answer") {
    answer(question, session_id)
}

/// What `ask_full` returns, or the ERROR it raises (as `guarded` raises it); a background job runs
/// exactly this.
pub fn answer(question: Option<&str>, session_id: Option<&str>) -> PgHeapTuple<'static, AllocatedByRust> {
    guarded(|| {
        let started = Instant::now();
        let out = run(question, session_id, false);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        answer_tuple(question.unwrap_or_default(), out, elapsed_ms)
    })
}

fn answer_tuple(question: &str, out: Outcome, elapsed_ms: f64) -> PgHeapTuple<'static, AllocatedByRust> {
    let mut t = PgHeapTuple::new_composite_type("sqlchat.answer")
        .unwrap_or_else(|e| raise(sqlchat_core::Error::Internal { detail: format!("type sqlchat.answer: {e}") }));
    let rows = out.result.as_ref().map(|r| r.to_objects());
    let chart = match (&out.sql, &rows) {
        (Some(sql), Some(rows)) => chart::suggest_chart(question, sql, rows).ok().map(JsonB),
        _ => None,
    };
    macro_rules! set {
        ($name:literal, $value:expr) => {
            if let Err(e) = t.set_by_name($name, $value) {
                raise(sqlchat_core::Error::Internal { detail: format!("building sqlchat.answer.{}: {e}", $name) });
            }
        };
    }
    set!("answer", out.answer.clone());
    set!("sql", out.sql.clone());
    set!("rows", rows.map(JsonB));
    set!("suggestions", out.suggestions.clone());
    set!("tables", out.tables.clone());
    set!("attempts", out.attempts as i32);
    set!("llm_calls", out.llm_calls as i32);
    set!("from_cache", out.from_cache);
    set!("elapsed_ms", elapsed_ms);
    set!("engine", out.engine.to_string());
    set!("truncated", out.result.as_ref().map(|r| r.truncated).unwrap_or(false));
    set!("chart", chart);
    set!("columns", out.result.as_ref().map(|r| JsonB(r.columns_json())));
    set!("verified", out.engine == "verified");
    set!("example_id", out.example_id);
    t
}

/// A chart a BI tool or web page can draw for a result: chart type, axes, reason and a complete
/// Vega-Lite v5 spec with the data inline.
#[pg_extern]
fn suggest_chart(question: Option<&str>, sql: Option<&str>, results: Option<JsonB>) -> JsonB {
    guarded(|| chart_for(question, sql, results))
}

fn chart_for(question: Option<&str>, sql: Option<&str>, results: Option<JsonB>) -> JsonB {
    let question = question.unwrap_or("");
    if !question.trim().is_empty() {
        // The same limit as a question to ask: it may go to the model.
        pipeline::validate_question(Some(question)).or_raise();
    }
    let results = results.map(|j| j.0).unwrap_or(serde_json::Value::Null);
    let mut chart = chart::suggest_chart(question, sql.unwrap_or(""), &results).or_raise();
    // Optional refinement of the title by the model; the local suggestion stands without a
    // gateway, when the call fails, or when the caller's quota is used up.
    if gucs::engine() != Engine::Offline
        && !question.trim().is_empty()
        && !crate::ops::quota::exhausted(&store::Caller::current())
    {
        match llm::chat(Purpose::Chart, &chart::title_messages(question, &chart), gucs::suggestion_temperature()) {
            Ok(reply) => {
                chart::apply_title(&mut chart, &reply);
            }
            Err(e) if e.is_cancel() => raise(e),
            Err(_) => {}
        }
    }
    JsonB(chart)
}

/// The caller's turns of a session, oldest first.
// pgrx reads the column names from the `name!` types in this signature, so they cannot move into a
// type alias.
#[allow(clippy::type_complexity)]
#[pg_extern]
fn history(
    session_id: &str,
) -> TableIterator<
    'static,
    (
        name!(turn, i64),
        name!(question, String),
        name!(sql, Option<String>),
        name!(answer, Option<String>),
        name!(asked_at, Option<pgrx::datum::TimestampWithTimeZone>),
    ),
> {
    guarded(|| TableIterator::new(memory::history(&store::Caller::current(), session_id)))
}

/// Deletes the caller's turns of a session; returns how many were deleted.
#[pg_extern]
fn forget(session_id: &str) -> i64 {
    guarded(|| memory::forget(&store::Caller::current(), session_id))
}

/// Empties the LLM cache; for superusers and the extension's owner. Returns the rows deleted.
#[pg_extern]
fn clear_cache() -> i64 {
    guarded(|| {
        if !store::caller_is_admin() {
            raise(sqlchat_core::Error::Privileged {
                what: "sqlchat.clear_cache()".into(),
                role: store::Caller::current().name,
                hint: "Ask a superuser or the owner of the sqlchat extension to clear the cache.".into(),
            });
        }
        cache::clear()
    })
}

/// What in the server's configuration needs attention: the library not preloaded, keys where other
/// roles can read them or where the server log records them, a gateway that does not answer, a
/// model it does not serve... One row per finding, most severe first; ('ok', ...) when none.
#[pg_extern]
fn check_setup() -> TableIterator<'static, (name!(severity, String), name!(problem, String), name!(fix, String))> {
    guarded(|| {
        let rows: Vec<_> =
            crate::setup::check().into_iter().map(|f| (f.severity.to_string(), f.problem, f.fix)).collect();
        TableIterator::new(rows)
    })
}

// ---- background asks (src/jobs/) ----

/// Queues a question for a background worker and returns the job's id at once; the worker runs
/// it as `ask_full` would have run now, as this role with this session's settings.
#[pg_extern]
fn submit(question: Option<&str>, session_id: default!(Option<&str>, "NULL")) -> i64 {
    crate::jobs::submit(question, session_id)
}

/// The job's answer once it is done; NULL while it is queued or running (after waiting up to
/// `wait_ms`); the job's own ERROR when it failed.
#[pg_extern]
fn result(job: i64, wait_ms: default!(i32, 0)) -> Option<pgrx::composite_type!('static, "sqlchat.answer")> {
    crate::jobs::result(job, wait_ms)
}

/// The caller's jobs (superusers: everyone's), newest first, or one of them.
#[allow(clippy::type_complexity)] // pgrx reads the row's columns from the type as written here
#[pg_extern]
fn job_status(
    job: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(job, i64),
        name!(state, String),
        name!(role, String),
        name!(question, String),
        name!(session_id, Option<String>),
        name!(submitted_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(started_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(finished_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(runs, i32),
        name!(sqlstate, Option<String>),
        name!(message, Option<String>),
        name!(worker_pid, Option<i32>),
    ),
> {
    TableIterator::new(crate::jobs::status(job))
}

/// Cancels a job: a queued one never runs, a running one is stopped at once. False when it had
/// already ended.
#[pg_extern]
fn cancel_job(job: i64) -> bool {
    crate::jobs::cancel(job)
}

extension_sql_file!("../sql/jobs.sql", name = "jobs", requires = [job_status]);
