//! Every SQL function of the extension. Thin: check arguments, call the pipeline, shape the result.

use crate::catalog;
use crate::error::{raise, OrRaise};
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
fn options(sql_only: bool, cache_scope: String) -> Options {
    Options {
        engine: gucs::engine(),
        generation_temperature: gucs::generation_temperature(),
        summary_temperature: gucs::summary_temperature(),
        max_attempts: gucs::max_attempts(),
        send_rows: gucs::send_rows(),
        schema_budget_tokens: gucs::schema_budget_tokens(),
        sql_only,
        cache_scope,
        ..Options::default()
    }
}

fn run(question: Option<&str>, session_id: Option<&str>, sql_only: bool) -> Outcome {
    let question = pipeline::validate_question(question).or_raise();
    let session_id = session_id.map(str::trim).filter(|s| !s.is_empty());
    let visible = catalog::visible_catalog().or_raise();
    let role = store::caller_role();
    let model = gucs::model();
    let context = session_id.map(|s| memory::load(&role, s, gucs::max_history())).unwrap_or_default();
    let opts = options(sql_only, format!("{model}\n{role}"));
    let mut host = Backend {
        limits: Limits::from_settings(),
        role: role.clone(),
        model,
        cache_ttl_s: gucs::enable_cache().then(gucs::cache_ttl_s),
    };
    let request = Request {
        question,
        catalog: &visible.catalog,
        index: Some(&visible.index),
        history: &context.recent,
        summary: context.summary.as_deref(),
        unsummarized: &context.unsummarized,
    };
    let out = pipeline::run(&mut host, &request, &opts).or_raise();
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
    run(question, session_id, false).answer
}

/// The SQL for a question, not executed. NULL (with a NOTICE saying why) when the question cannot
/// be answered from the schema.
#[pg_extern]
fn generate_sql(question: Option<&str>, session_id: default!(Option<&str>, "NULL")) -> Option<String> {
    let out = run(question, session_id, true);
    if out.sql.is_none() {
        pgrx::notice!("{}", out.answer);
    }
    out.sql
}

/// Answer, SQL, rows, suggestions and figures of one question.
#[pg_extern]
fn ask_full(
    question: Option<&str>,
    session_id: default!(Option<&str>, "NULL"),
) -> pgrx::composite_type!('static, "sqlchat.answer") {
    let started = Instant::now();
    let out = run(question, session_id, false);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    answer_tuple(question.unwrap_or_default(), out, elapsed_ms)
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
    t
}

/// A chart a BI tool or web page can draw for a result: chart type, axes, reason and a complete
/// Vega-Lite v5 spec with the data inline.
#[pg_extern]
fn suggest_chart(question: Option<&str>, sql: Option<&str>, results: Option<JsonB>) -> JsonB {
    let question = question.unwrap_or("");
    let results = results.map(|j| j.0).unwrap_or(serde_json::Value::Null);
    let mut chart = chart::suggest_chart(question, sql.unwrap_or(""), &results).or_raise();
    // Optional refinement of the title by the model; the local suggestion stands without a
    // gateway or when the call fails.
    if gucs::engine() != Engine::Offline && !question.trim().is_empty() {
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
    TableIterator::new(memory::history(&store::caller_role(), session_id))
}

/// Deletes the caller's turns of a session; returns how many were deleted.
#[pg_extern]
fn forget(session_id: &str) -> i64 {
    memory::forget(&store::caller_role(), session_id)
}

/// Empties the LLM cache; for superusers and the extension's owner. Returns the rows deleted.
#[pg_extern]
fn clear_cache() -> i64 {
    if !store::caller_is_admin() {
        raise(sqlchat_core::Error::Privileged {
            what: "sqlchat.clear_cache()".into(),
            role: store::caller_role(),
            hint: "Ask a superuser or the owner of the sqlchat extension to clear the cache.".into(),
        });
    }
    cache::clear()
}
