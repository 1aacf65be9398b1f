//! The agent's steps as one plain function over a `Host` (the extension in production, a scripted
//! fake in tests): choose tables -> schema context -> generate -> extract -> execute -> repair ->
//! answer. The host owns every side effect (HTTP, SQL, cache); this module owns the decisions.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::extract::{extract_sql, Extracted};
use crate::lang::{SchemaIndex, View};
use crate::offline;
use crate::openai::{Message, Purpose};
use crate::prompt::{self, Turn};
use crate::rank;
use crate::result::ResultSet;

/// Why a generated statement did not produce rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecFailure {
    pub sqlstate: String,
    pub message: String,
    /// Refused by the validator before it ran (not a PostgreSQL execution error).
    pub refused: bool,
}

impl ExecFailure {
    /// A cancel or timeout: ends the request, never repaired.
    pub fn is_cancel(&self) -> bool {
        !self.refused && self.sqlstate == "57014"
    }
}

pub trait Host {
    /// One chat-completions call; returns the reply's text.
    fn chat(&mut self, purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String>;
    /// Validates and runs one generated statement read-only as the caller.
    fn execute(&mut self, sql: &str) -> std::result::Result<ResultSet, ExecFailure>;
    /// SQL cached for this exact prompt context, if any.
    fn cached_sql(&mut self, _key: &str) -> Option<String> {
        None
    }
    /// Remembers SQL that ran for this prompt context.
    fn store_sql(&mut self, _key: &str, _sql: &str) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Llm,
    Offline,
    /// Offline when it is confident, else the LLM.
    Auto,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub engine: Engine,
    pub generation_temperature: f64,
    pub summary_temperature: f64,
    pub max_attempts: u32,
    /// Send a sample of the rows to the model for the answer (`sqlchat.send_rows = sample`).
    pub send_rows: bool,
    pub send_rows_max: usize,
    pub send_rows_max_bytes: usize,
    /// Token budget of the schema context in the SQL-generation prompt.
    pub schema_budget_tokens: usize,
    /// `generate_sql`: stop after extraction, run nothing.
    pub sql_only: bool,
    /// Text that makes cache keys differ per model, role and the like (supplied by the host).
    pub cache_scope: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            engine: Engine::Llm,
            generation_temperature: 0.0,
            summary_temperature: 0.3,
            max_attempts: 3,
            send_rows: true,
            send_rows_max: 20,
            send_rows_max_bytes: 4096,
            schema_budget_tokens: 1500,
            sql_only: false,
            cache_scope: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub answer: String,
    pub sql: Option<String>,
    pub result: Option<ResultSet>,
    pub suggestions: Vec<String>,
    pub tables: Vec<String>,
    pub attempts: u32,
    pub llm_calls: u32,
    pub from_cache: bool,
    /// The model said the question cannot be answered from the schema.
    pub refusal: bool,
    /// Prompt tokens (characters / 4) of the SQL-generation request.
    pub prompt_tokens: usize,
    /// "llm" or "offline".
    pub engine: &'static str,
    /// A new summary of older turns, for the host to store.
    pub new_summary: Option<String>,
}

pub struct Request<'a> {
    pub question: &'a str,
    pub catalog: &'a Catalog,
    /// The schema index of the whole catalog, cached by the host; built per request when None.
    pub index: Option<&'a SchemaIndex>,
    /// The most recent turns of the session, sent in full (oldest first).
    pub history: &'a [Turn],
    /// The stored summary of turns older than those.
    pub summary: Option<&'a str>,
    /// Turns older than `history` that the stored summary does not cover yet: folded into a new
    /// summary (one call) before SQL is generated.
    pub unsummarized: &'a [Turn],
}

/// Counts chat calls made through it.
struct Counting<'h, H: Host + ?Sized> {
    host: &'h mut H,
    calls: u32,
}

impl<H: Host + ?Sized> Counting<'_, H> {
    fn chat(&mut self, purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String> {
        self.calls += 1;
        self.host.chat(purpose, messages, temperature)
    }
}

pub fn validate_question(question: Option<&str>) -> Result<&str> {
    match question {
        None => Err(Error::NullQuestion),
        Some(q) if q.trim().is_empty() => Err(Error::EmptyQuestion),
        Some(q) if q.len() > 8000 => Err(Error::InvalidArgument {
            what: format!("question is {} bytes long; the limit is 8000", q.len()),
            hint: "Ask a shorter question.".into(),
        }),
        Some(q) => Ok(q.trim()),
    }
}

pub fn run<H: Host + ?Sized>(host: &mut H, req: &Request, opts: &Options) -> Result<Outcome> {
    if req.catalog.tables.is_empty() {
        return Err(Error::NoVisibleTables);
    }
    // In auto mode a question with earlier turns may refer to them in ways only the model can
    // resolve; in offline mode the offline engine resolves short follow-ups ("and in 2024?") itself.
    let offline_first = match opts.engine {
        Engine::Offline => true,
        Engine::Auto => req.history.is_empty(),
        Engine::Llm => false,
    };
    let view = View::new(req.catalog, req.index);
    if offline_first {
        match try_offline(host, req, &view, opts)? {
            Ok(out) => return Ok(out),
            Err(reason) if opts.engine == Engine::Offline => return Ok(offline_decline(req, &reason)),
            Err(_) => {}
        }
    }
    run_llm(host, req, &view, opts)
}

/// The offline engine's answer when it declines: its reason, and what would help.
fn offline_decline(req: &Request, reason: &offline::Decline) -> Outcome {
    let answer = match reason {
        // Not about the data: a model would not find it in this database either.
        offline::Decline::NotAboutData | offline::Decline::Empty => {
            format!("\"{}\" does not seem to be about the data in this database: {reason}.", req.question)
        }
        _ => format!(
            "The offline engine cannot answer \"{}\" with confidence: {reason}. An LLM gateway can take questions \
             like this: set sqlchat.api_base (and sqlchat.api_key) in postgresql.conf, reload, and \
             SET sqlchat.engine = 'auto'.",
            req.question
        ),
    };
    Outcome { answer, refusal: true, engine: "offline", ..Default::default() }
}

/// The planner's window on the data; remembers a cancel so that it ends the request instead of
/// reading as "no such value".
struct ProbeHost<'h, H: Host + ?Sized> {
    host: &'h mut H,
    cancel: Option<ExecFailure>,
}

impl<H: Host + ?Sized> offline::Probe for ProbeHost<'_, H> {
    fn query(&mut self, sql: &str) -> std::result::Result<ResultSet, String> {
        if let Some(f) = &self.cancel {
            return Err(f.message.clone());
        }
        self.host.execute(sql).map_err(|f| {
            let message = f.message.clone();
            if f.is_cancel() {
                self.cancel = Some(f);
            }
            message
        })
    }
}

/// The offline engine's outcome, or why it declines.
type OfflineTry = std::result::Result<Outcome, offline::Decline>;

fn try_offline<H: Host + ?Sized>(host: &mut H, req: &Request, view: &View, opts: &Options) -> Result<OfflineTry> {
    let mut probe = ProbeHost { host, cancel: None };
    let mut decision = offline::plan(view, req.question, &mut probe);
    // A short follow-up ("and in 2024?") read against the previous question of the session.
    if let (offline::Decision::Decline(_), Some(previous)) = (&decision, req.history.last()) {
        if let Some(merged) = offline::follow_up(&previous.question, req.question) {
            if let answer @ offline::Decision::Answer(_) = offline::plan(view, &merged, &mut probe) {
                decision = answer;
            }
        }
    }
    if let Some(f) = probe.cancel {
        return Err(Error::Cancelled { message: f.message });
    }
    let host = probe.host;
    let plan = match decision {
        offline::Decision::Answer(p) => p,
        offline::Decision::Decline(reason) => return Ok(Err(reason)),
    };
    if opts.sql_only {
        return Ok(Ok(Outcome {
            sql: Some(plan.sql.clone()),
            tables: plan.tables.clone(),
            attempts: 1,
            engine: "offline",
            ..Default::default()
        }));
    }
    match host.execute(&plan.sql) {
        Ok(rs) => {
            let (answer, suggestions) = offline::render_answer(&plan, &rs);
            Ok(Ok(Outcome {
                answer,
                sql: Some(plan.sql.clone()),
                result: Some(rs),
                suggestions,
                tables: plan.tables.clone(),
                attempts: 1,
                engine: "offline",
                ..Default::default()
            }))
        }
        Err(f) if f.is_cancel() => Err(Error::Cancelled { message: f.message }),
        // A planner query that fails is a planner bug or a schema it misread: fall back.
        Err(f) => Ok(Err(offline::Decline::Unsupported(format!("its query failed ({})", f.message)))),
    }
}

fn run_llm<H: Host + ?Sized>(host: &mut H, req: &Request, view: &View, opts: &Options) -> Result<Outcome> {
    let mut ctr = Counting { host, calls: 0 };
    let new_summary = if req.unsummarized.is_empty() {
        None
    } else {
        let msgs = prompt::summarize_messages(req.summary, req.unsummarized);
        match ctr.chat(Purpose::Summarize, &msgs, opts.summary_temperature) {
            Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Err(e) if e.is_cancel() => return Err(e),
            // Without a summary the recent turns still carry the conversation.
            _ => None,
        }
    };
    let summary = new_summary.as_deref().or(req.summary);
    let selected = rank::select_tables(view, req.question, opts.schema_budget_tokens);
    let schema = rank::render_schema(req.catalog, &selected);
    let tables: Vec<String> = selected.iter().map(|&i| req.catalog.tables[i].display_name()).collect();
    let messages = prompt::generate_sql_messages(req.question, &schema, req.history, summary);
    let prompt_tokens: usize = messages.iter().map(|m| crate::estimate_tokens(&m.content)).sum();
    let cache_key = crate::cache_key(&opts.cache_scope, &messages);

    let mut from_cache = false;
    let first_reply = match ctr.host.cached_sql(&cache_key) {
        Some(sql) => {
            from_cache = true;
            sql
        }
        None => ctr.chat(Purpose::GenerateSql, &messages, opts.generation_temperature)?,
    };
    let mut sql = match extract_sql(&first_reply) {
        Extracted::Sql(s) => s,
        Extracted::Refusal(reason) => {
            return Ok(Outcome {
                answer: refusal_answer(&reason),
                tables,
                attempts: 1,
                llm_calls: ctr.calls,
                refusal: true,
                prompt_tokens,
                engine: "llm",
                new_summary,
                ..Default::default()
            })
        }
        Extracted::Empty => return Err(Error::NoSql { reply_excerpt: first_reply }),
    };

    if opts.sql_only {
        // Nothing ran: only SQL that ran is cached.
        return Ok(Outcome {
            sql: Some(sql),
            tables,
            attempts: 1,
            llm_calls: ctr.calls,
            from_cache,
            prompt_tokens,
            engine: "llm",
            new_summary,
            ..Default::default()
        });
    }

    let mut tried: Vec<String> = Vec::new();
    let max_attempts = opts.max_attempts.max(1);
    let result = loop {
        tried.push(normalize_sql(&sql));
        match ctr.host.execute(&sql) {
            Ok(rs) => break rs,
            Err(f) if f.is_cancel() => return Err(Error::Cancelled { message: f.message }),
            Err(f) => {
                // A cached statement that no longer runs (schema changed under the same context):
                // repair it like any other failure, but never count the stale entry as a hit.
                from_cache = false;
                let give_up = |sql: String, f: ExecFailure, attempts: u32| {
                    if f.refused {
                        Error::QueryRefused { sqlstate: f.sqlstate, reason: f.message, sql, attempts }
                    } else {
                        Error::QueryFailed { sqlstate: f.sqlstate, message: f.message, sql, attempts }
                    }
                };
                if tried.len() as u32 >= max_attempts {
                    return Err(give_up(sql, f, tried.len() as u32));
                }
                let error_text = if f.refused {
                    format!("sqlchat refused this statement before running it: {}", f.message)
                } else {
                    format!("ERROR: {} (SQLSTATE {})", f.message, f.sqlstate)
                };
                let msgs = prompt::repair_messages(req.question, &schema, req.history, summary, &sql, &error_text);
                let reply = ctr.chat(Purpose::Repair, &msgs, opts.generation_temperature)?;
                match extract_sql(&reply) {
                    Extracted::Sql(s) if !tried.contains(&normalize_sql(&s)) => sql = s,
                    // The model repeats itself or gives up: nothing more to learn from it.
                    _ => return Err(give_up(sql, f, tried.len() as u32)),
                }
            }
        }
    };
    if !from_cache {
        ctr.host.store_sql(&cache_key, &sql);
    }

    let (answer, suggestions) = answer_step(&mut ctr, req.question, &sql, &result, opts)?;
    Ok(Outcome {
        answer,
        sql: Some(sql),
        result: Some(result),
        suggestions,
        tables,
        attempts: tried.len() as u32,
        llm_calls: ctr.calls,
        from_cache,
        refusal: false,
        prompt_tokens,
        engine: "llm",
        new_summary,
    })
}

fn answer_step<H: Host + ?Sized>(
    ctr: &mut Counting<H>,
    question: &str,
    sql: &str,
    result: &ResultSet,
    opts: &Options,
) -> Result<(String, Vec<String>)> {
    // sqlchat.send_rows = none: no row leaves the database, and the answer comes from a template.
    if !opts.send_rows {
        return Ok((prompt::template_answer(question, result), vec![]));
    }
    let (sample, shown) = result.sample_for_prompt(opts.send_rows_max, opts.send_rows_max_bytes);
    let msgs =
        prompt::answer_messages(question, sql, Some((sample.as_str(), shown)), result.rows.len(), result.truncated);
    match ctr.chat(Purpose::Answer, &msgs, opts.summary_temperature) {
        Ok(reply) => match prompt::parse_answer_reply(&reply) {
            Some(a) => Ok((a.answer, a.followups)),
            None => Ok((prompt::template_answer(question, result), vec![])),
        },
        Err(e) if e.is_cancel() => Err(e),
        // The rows are the answer; a failed wording call should not throw them away.
        Err(_) => Ok((prompt::template_answer(question, result), vec![])),
    }
}

fn refusal_answer(reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() {
        "This question cannot be answered from the tables you can read.".to_string()
    } else {
        format!("This question cannot be answered from the tables you can read: {reason}")
    }
}

/// Whitespace- and case-insensitive form used to notice a model repeating a statement.
pub fn normalize_sql(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};
    use crate::result::ResultColumn;
    use serde_json::json;

    struct Script {
        replies: Vec<Result<String>>,
        exec: Vec<std::result::Result<ResultSet, ExecFailure>>,
        purposes: Vec<Purpose>,
        executed: Vec<String>,
    }

    impl Host for Script {
        fn chat(&mut self, purpose: Purpose, _m: &[Message], _t: f64) -> Result<String> {
            self.purposes.push(purpose);
            if self.replies.is_empty() {
                return Err(Error::GatewayStatus { status: 500, body: String::new() });
            }
            self.replies.remove(0)
        }
        fn execute(&mut self, sql: &str) -> std::result::Result<ResultSet, ExecFailure> {
            self.executed.push(sql.to_string());
            self.exec.remove(0)
        }
    }

    fn catalog() -> Catalog {
        let id = Column { not_null: true, ..Column::new("id", "integer", 'N') };
        Catalog {
            tables: vec![Table {
                oid: 1,
                primary_key: vec!["id".into()],
                row_estimate: 10.0,
                ..Table::new("public", "orders", vec![id])
            }],
        }
    }

    fn rows() -> ResultSet {
        ResultSet {
            columns: vec![ResultColumn { name: "count".into(), type_name: "bigint".into(), category: 'N' }],
            rows: vec![vec![json!(3)]],
            truncated: false,
        }
    }

    fn fail(msg: &str) -> ExecFailure {
        ExecFailure { sqlstate: "42703".into(), message: msg.into(), refused: false }
    }

    fn req<'a>(c: &'a Catalog) -> Request<'a> {
        Request {
            question: "how many orders?",
            catalog: c,
            index: None,
            history: &[],
            summary: None,
            unsummarized: &[],
        }
    }

    #[test]
    fn two_calls_for_a_plain_question() {
        let c = catalog();
        let mut h = Script {
            replies: vec![
                Ok("```sql\nSELECT count(*) FROM orders;\n```".into()),
                Ok(r#"{"answer":"There are 3 orders.","followups":["x?"]}"#.into()),
            ],
            exec: vec![Ok(rows())],
            purposes: vec![],
            executed: vec![],
        };
        let out = run(&mut h, &req(&c), &Options::default()).unwrap();
        assert_eq!(out.llm_calls, 2);
        assert_eq!(out.attempts, 1);
        assert_eq!(h.purposes, vec![Purpose::GenerateSql, Purpose::Answer]);
        assert_eq!(out.sql.as_deref(), Some("SELECT count(*) FROM orders"));
    }

    #[test]
    fn repairs_then_stops_on_repeat() {
        let c = catalog();
        let mut h = Script {
            replies: vec![Ok("SELECT nope FROM orders".into()), Ok("SELECT NOPE  FROM orders".into())],
            exec: vec![Err(fail("column \"nope\" does not exist"))],
            purposes: vec![],
            executed: vec![],
        };
        let err = run(&mut h, &req(&c), &Options::default()).unwrap_err();
        assert!(matches!(err, Error::QueryFailed { attempts: 1, .. }), "{err:?}");
        assert_eq!(err.sqlstate(), "42703");
        assert_eq!(h.executed.len(), 1);
    }

    #[test]
    fn repair_succeeds() {
        let c = catalog();
        let mut h = Script {
            replies: vec![
                Ok("SELECT nope FROM orders".into()),
                Ok("SELECT count(*) FROM orders".into()),
                Ok("not json".into()),
            ],
            exec: vec![Err(fail("no")), Ok(rows())],
            purposes: vec![],
            executed: vec![],
        };
        let out = run(&mut h, &req(&c), &Options::default()).unwrap();
        assert_eq!(out.attempts, 2);
        assert_eq!(out.llm_calls, 3);
        assert_eq!(h.purposes, vec![Purpose::GenerateSql, Purpose::Repair, Purpose::Answer]);
        assert!(!out.answer.is_empty());
    }

    #[test]
    fn max_attempts_bounds_the_loop() {
        let c = catalog();
        let mut h = Script {
            replies: vec![Ok("SELECT a".into()), Ok("SELECT b".into()), Ok("SELECT c".into()), Ok("SELECT d".into())],
            exec: vec![Err(fail("1")), Err(fail("2")), Err(fail("3")), Err(fail("4"))],
            purposes: vec![],
            executed: vec![],
        };
        let err = run(&mut h, &req(&c), &Options::default()).unwrap_err();
        assert!(matches!(err, Error::QueryFailed { attempts: 3, .. }));
        assert_eq!(h.executed, vec!["SELECT a", "SELECT b", "SELECT c"]);
    }

    #[test]
    fn cancel_is_never_repaired() {
        let c = catalog();
        let mut h = Script {
            replies: vec![Ok("SELECT 1".into())],
            exec: vec![Err(ExecFailure {
                sqlstate: "57014".into(),
                message: "canceling statement due to user request".into(),
                refused: false,
            })],
            purposes: vec![],
            executed: vec![],
        };
        let err = run(&mut h, &req(&c), &Options::default()).unwrap_err();
        assert_eq!(err.sqlstate(), "57014");
        assert_eq!(h.purposes.len(), 1);
    }

    #[test]
    fn answer_failure_keeps_rows() {
        let c = catalog();
        let mut h = Script {
            replies: vec![Ok("SELECT count(*) FROM orders".into())],
            exec: vec![Ok(rows())],
            purposes: vec![],
            executed: vec![],
        };
        let out = run(&mut h, &req(&c), &Options::default()).unwrap();
        assert!(out.result.is_some());
        assert!(!out.answer.is_empty());
    }

    #[test]
    fn send_rows_none_answers_from_a_template() {
        let c = catalog();
        let mut h = Script {
            replies: vec![Ok("SELECT count(*) FROM orders".into())],
            exec: vec![Ok(rows())],
            purposes: vec![],
            executed: vec![],
        };
        let out = run(&mut h, &req(&c), &Options { send_rows: false, ..Options::default() }).unwrap();
        assert_eq!(h.purposes, vec![Purpose::GenerateSql]);
        assert_eq!(out.llm_calls, 1);
        assert!(out.answer.contains('3'), "{}", out.answer);
    }

    #[test]
    fn sql_only_makes_one_call_and_runs_nothing() {
        let c = catalog();
        let mut h = Script { replies: vec![Ok("SELECT 1;".into())], exec: vec![], purposes: vec![], executed: vec![] };
        let out = run(&mut h, &req(&c), &Options { sql_only: true, ..Options::default() }).unwrap();
        assert_eq!(out.llm_calls, 1);
        assert!(h.executed.is_empty());
    }

    #[test]
    fn offline_engine_answers_inside_a_session_too() {
        let c = catalog();
        let history = [Turn { question: "earlier".into(), sql: None, answer: None }];
        let request = Request {
            question: "how many orders are there?",
            catalog: &c,
            index: None,
            history: &history,
            summary: None,
            unsummarized: &[],
        };
        let mut h = Script { replies: vec![], exec: vec![Ok(rows())], purposes: vec![], executed: vec![] };
        let out = run(&mut h, &request, &Options { engine: Engine::Offline, ..Options::default() }).unwrap();
        assert_eq!(out.engine, "offline");
        assert!(out.sql.is_some(), "{}", out.answer);
        assert!(h.purposes.is_empty());
    }

    #[test]
    fn offline_declines_say_why() {
        let c = catalog();
        let ask = |question: &str| {
            let request = Request { question, ..req(&c) };
            let mut h = Script { replies: vec![], exec: vec![], purposes: vec![], executed: vec![] };
            run(&mut h, &request, &Options { engine: Engine::Offline, ..Options::default() }).unwrap().answer
        };
        let weather = ask("What is the weather in Berlin?");
        assert!(weather.contains("does not seem to be about the data"), "{weather}");
        assert!(!weather.contains("api_base"), "{weather}");
        let unknown = ask("How many orders were refunded?");
        assert!(unknown.contains("\"refunded\""), "{unknown}");
        assert!(unknown.contains("api_base"), "{unknown}");
    }

    #[test]
    fn offline_follow_ups_build_on_the_previous_turn() {
        let mut c = catalog();
        c.tables[0].columns.push(Column::new("placed_on", "date", 'D'));
        let history = [Turn { question: "How many orders were there in 2025?".into(), sql: None, answer: None }];
        let request = Request { question: "and in 2024?", history: &history, ..req(&c) };
        let mut h = Script { replies: vec![], exec: vec![Ok(rows())], purposes: vec![], executed: vec![] };
        let out = run(&mut h, &request, &Options { engine: Engine::Offline, ..Options::default() }).unwrap();
        let sql = out.sql.unwrap_or_default();
        assert!(sql.contains("'2024-01-01'") && !sql.contains("'2026-01-01'"), "{sql}");
    }

    #[test]
    fn a_cancel_during_a_value_lookup_ends_the_request() {
        let mut c = catalog();
        c.tables[0].columns.push(Column::new("city", "text", 'S'));
        let request = Request {
            question: "how many orders are in Oslo?",
            catalog: &c,
            index: None,
            history: &[],
            summary: None,
            unsummarized: &[],
        };
        let cancel = ExecFailure {
            sqlstate: "57014".into(),
            message: "canceling statement due to user request".into(),
            refused: false,
        };
        let mut h = Script {
            replies: vec![],
            exec: vec![Err(cancel.clone()), Err(cancel)],
            purposes: vec![],
            executed: vec![],
        };
        let err = run(&mut h, &request, &Options { engine: Engine::Auto, ..Options::default() }).unwrap_err();
        assert_eq!(err.sqlstate(), "57014");
        assert!(h.purposes.is_empty(), "no model call after a cancel");
    }

    #[test]
    fn empty_catalog_is_an_error() {
        let c = Catalog::default();
        let mut h = Script { replies: vec![], exec: vec![], purposes: vec![], executed: vec![] };
        assert_eq!(run(&mut h, &req(&c), &Options::default()).unwrap_err(), Error::NoVisibleTables);
    }

    #[test]
    fn questions_are_checked() {
        assert_eq!(validate_question(None).unwrap_err(), Error::NullQuestion);
        assert_eq!(validate_question(Some("  ")).unwrap_err(), Error::EmptyQuestion);
        assert_eq!(validate_question(Some(" hi ")).unwrap(), "hi");
    }
}
