//! The agent's steps as one plain function over a `Host` (the extension in production, a scripted
//! fake in tests): choose tables -> schema context -> generate -> extract -> execute -> repair ->
//! answer. The host owns every side effect (HTTP, SQL, cache, interrupts); this module owns the
//! decisions.
//!
//! Replies for SQL are counted in `attempts` and bounded by `max_attempts`: the first, at most one
//! request for the SQL alone after a reply that held neither SQL nor a refusal (sent with purpose
//! `repair`: it repairs the reply), and the repairs of statements that failed. Text a model wrote
//! instead of SQL is never shown as an answer: only a plain refusal is answered, and with no SQL
//! after the extra request the ask ends with `Error::NoSql`.

use crate::catalog::Catalog;
use crate::error::{Error, Refusal, Result, Tried};
use crate::extract::{extract_sql, visible_text, Extracted};
use crate::lang::{sql, SchemaIndex, View};
use crate::offline;
use crate::openai::{Message, Purpose};
use crate::prompt::{self, Turn};
use crate::rank;
use crate::result::ResultSet;
use crate::teach::{self, values, Example, Teaching};
use std::collections::{HashMap, HashSet};

/// Why a generated statement did not produce rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecFailure {
    pub sqlstate: String,
    pub message: String,
    /// Refused by sqlchat before it ran (not a PostgreSQL execution error), and why.
    pub refusal: Option<Refusal>,
    /// Raised once the statement had started running: its message may quote values of the rows
    /// it read (errors of parsing and analysis cannot).
    pub while_running: bool,
    /// The statement read a private column.
    pub read_private: bool,
}

impl ExecFailure {
    /// A cancel or timeout: ends the request, never repaired.
    pub fn is_cancel(&self) -> bool {
        self.refusal.is_none() && self.sqlstate == "57014"
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
    /// Acts on a pending cancel or timeout by unwinding out of the pipeline (the extension's
    /// `check_for_interrupts!()`). Called between steps and during long passes over model text;
    /// must be cheap when nothing is pending.
    fn check_interrupts(&mut self) {}
    /// Progress: the tables an engine (llm or offline) will use are chosen.
    fn tables_chosen(&mut self, _engine: &'static str, _tables: &[String]) {}
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
    /// Token budget of the worked examples in the SQL-generation prompt.
    pub examples_budget_tokens: usize,
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
            examples_budget_tokens: 400,
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
    /// The taught example whose SQL answered, as is (engine "verified").
    pub example_id: Option<i64>,
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
    /// What is taught (examples, definitions, private columns); `teach::NOTHING_TAUGHT` when nothing is.
    pub teaching: &'a Teaching,
}

/// Counts chat calls made through it, and reads replies with the host's interrupt checks.
struct Counting<'h, H: Host + ?Sized> {
    host: &'h mut H,
    calls: u32,
}

impl<H: Host + ?Sized> Counting<'_, H> {
    fn chat(&mut self, purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String> {
        self.calls += 1;
        self.host.check_interrupts();
        let reply = self.host.chat(purpose, messages, temperature);
        self.host.check_interrupts();
        reply
    }

    fn extract(&mut self, reply: &str) -> Extracted {
        let host = &mut *self.host;
        extract_sql(reply, &mut || host.check_interrupts())
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

/// Longest session id: an id, not a text (it is stored with every turn and logged with every ask).
pub const MAX_SESSION_ID_BYTES: usize = 200;

/// The session id as sqlchat keeps it: trimmed, None when empty.
pub fn validate_session_id(session_id: Option<&str>) -> Result<Option<&str>> {
    match session_id.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.len() > MAX_SESSION_ID_BYTES => Err(Error::InvalidArgument {
            what: format!("session_id is {} bytes long; the limit is {MAX_SESSION_ID_BYTES}", s.len()),
            hint: "Use a short identifier as the session id: a name, a number or a UUID.".into(),
        }),
        s => Ok(s),
    }
}

pub fn run<H: Host + ?Sized>(host: &mut H, req: &Request, opts: &Options) -> Result<Outcome> {
    if req.catalog.tables.is_empty() {
        return Err(Error::NoVisibleTables);
    }
    // In auto mode a question with earlier turns may refer to them in ways only the model can
    // resolve, except a short follow-up ("and in 2024?") of a turn the offline engine reads as it
    // was answered; in offline mode the offline engine resolves such follow-ups itself.
    let offline_first = match opts.engine {
        Engine::Offline => true,
        Engine::Auto => req.history.is_empty() || offline::is_follow_up(req.question),
        Engine::Llm => false,
    };
    let view = View::new(req.catalog, req.index);
    let usable = req.teaching.usable(req.catalog);
    if let Some(i) = req.teaching.verified(&usable, req.question) {
        if let Some(out) = run_verified(host, req, &req.teaching.examples[i], opts)? {
            return Ok(out);
        }
    }
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
    req: &'h Request<'h>,
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

    fn is_private(&self, table: usize, column: usize) -> bool {
        self.req.teaching.is_private(self.req.catalog, table, column)
    }
}

/// The offline engine's outcome, or why it declines.
type OfflineTry = std::result::Result<Outcome, offline::Decline>;

fn try_offline<H: Host + ?Sized>(host: &mut H, req: &Request, view: &View, opts: &Options) -> Result<OfflineTry> {
    let mut probe = ProbeHost { host, cancel: None, req };
    // In a session, auto mode answers offline only a follow-up it can place (see offline::follow).
    let mut decision = if req.history.is_empty() || opts.engine == Engine::Offline {
        offline::plan(view, req.question, &mut probe)
    } else {
        offline::Decision::Decline(offline::Decline::Unsupported("a question in a session".into()))
    };
    if let (offline::Decision::Decline(_), false) = (&decision, req.history.is_empty()) {
        let earlier: Vec<offline::Earlier> =
            req.history.iter().map(|t| offline::Earlier { question: &t.question, sql: t.sql.as_deref() }).collect();
        if let Some(answer) = offline::plan_follow_up(view, &earlier, req.question, &mut probe) {
            decision = answer;
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
    host.tables_chosen("offline", &plan.tables);
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
            let (answer, suggestions) = offline::render_answer(&plan, &rs.masked());
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
        Err(f) => {
            let f = without_row_values(f, opts);
            Ok(Err(offline::Decline::Unsupported(format!("its query failed ({})", f.message))))
        }
    }
}

fn run_llm<H: Host + ?Sized>(host: &mut H, req: &Request, view: &View, opts: &Options) -> Result<Outcome> {
    let mut ctr = Counting { host, calls: 0 };
    let new_summary = summary_step(&mut ctr, req, opts)?;
    let summary = new_summary.as_deref().or(req.summary);
    let mut probe = ProbeHost { host: &mut *ctr.host, cancel: None, req };
    let sql_context = sql_context(view, req, opts, &mut probe);
    if let Some(f) = probe.cancel {
        return Err(Error::Cancelled { message: f.message });
    }
    let (schema, taught) = (&sql_context.schema, &sql_context.taught);
    let tables: Vec<String> = sql_context.selected.iter().map(|&i| req.catalog.tables[i].display_name()).collect();
    ctr.host.tables_chosen("llm", &tables);
    let history = turns_for_model(req.history, opts);
    let context = Context { question: req.question, schema, taught, history: &history, summary };
    let messages = prompt::generate_sql_messages(req.question, schema, taught, &history, summary);
    let prompt_tokens: usize = messages.iter().map(|m| crate::estimate_tokens(&m.content)).sum();
    let cache_key = crate::cache_key(&opts.cache_scope, &messages);
    let outcome = |attempts: u32, calls: u32| Outcome {
        tables: tables.clone(),
        attempts,
        llm_calls: calls,
        prompt_tokens,
        engine: "llm",
        new_summary: new_summary.clone(),
        ..Default::default()
    };

    let (candidate, attempts, from_cache) = match generate(&mut ctr, &context, &messages, &cache_key, opts)? {
        Generated::Refusal { reason, attempts } => {
            return Ok(Outcome { answer: refusal_answer(&reason), refusal: true, ..outcome(attempts, ctr.calls) })
        }
        Generated::Candidate { candidate, attempts, from_cache } => (candidate, attempts, from_cache),
    };
    if opts.sql_only {
        // Nothing ran: only SQL that ran is cached.
        return match candidate {
            Candidate::One(sql) => Ok(Outcome { sql: Some(sql), from_cache, ..outcome(attempts, ctr.calls) }),
            Candidate::Several(sql) => {
                let refusal = several_statements(&sql);
                Err(give_up(sql, refusal, tried_so_far(attempts, opts, ctr.calls)))
            }
        };
    }
    let ran = run_with_repairs(&mut ctr, &context, candidate, attempts, opts)?;
    // A cached statement that no longer runs was repaired like any other: no hit then.
    let from_cache = from_cache && ran.attempts == attempts;
    if !from_cache {
        ctr.host.store_sql(&cache_key, &ran.sql);
    }
    let (answer, suggestions) = answer_step(&mut ctr, req.question, &ran.sql, &ran.result, opts)?;
    Ok(Outcome {
        answer,
        sql: Some(ran.sql),
        result: Some(ran.result),
        suggestions,
        from_cache,
        ..outcome(ran.attempts, ctr.calls)
    })
}

/// What the SQL prompts are built from.
struct Context<'a> {
    question: &'a str,
    schema: &'a str,
    taught: &'a prompt::Taught,
    history: &'a [Turn],
    summary: Option<&'a str>,
}

/// SQL to try: one statement, or several where one was asked for (refused without running).
enum Candidate {
    One(String),
    Several(String),
}

impl Candidate {
    fn text(&self) -> &str {
        match self {
            Candidate::One(sql) | Candidate::Several(sql) => sql,
        }
    }
}

enum Generated {
    Candidate { candidate: Candidate, attempts: u32, from_cache: bool },
    Refusal { reason: String, attempts: u32 },
}

/// The first reply to `messages` (from the cache or the model) and, when it held neither SQL nor
/// a refusal and `max_attempts` allows, one request for the SQL alone.
fn generate<H: Host + ?Sized>(
    ctr: &mut Counting<H>,
    context: &Context,
    messages: &[Message],
    cache_key: &str,
    opts: &Options,
) -> Result<Generated> {
    let (reply, from_cache) = match ctr.host.cached_sql(cache_key) {
        Some(sql) => (sql, true),
        None => (ctr.chat(Purpose::GenerateSql, messages, opts.generation_temperature)?, false),
    };
    let mut attempts = 1;
    let mut extracted = ctr.extract(&reply);
    let mut last_reply = reply;
    let mut from_cache = from_cache;
    if extracted == Extracted::NoSql && attempts < opts.max_attempts.max(1) {
        let c = context;
        let messages = prompt::sql_only_messages(c.question, c.schema, c.taught, c.history, c.summary);
        last_reply = ctr.chat(Purpose::Repair, &messages, opts.generation_temperature)?;
        attempts += 1;
        from_cache = false;
        extracted = ctr.extract(&last_reply);
    }
    Ok(match extracted {
        Extracted::Sql(sql) => Generated::Candidate { candidate: Candidate::One(sql), attempts, from_cache },
        Extracted::Several(sql) => Generated::Candidate { candidate: Candidate::Several(sql), attempts, from_cache },
        Extracted::Refusal(reason) => Generated::Refusal { reason, attempts },
        Extracted::NoSql => {
            return Err(Error::NoSql { reply: reply_excerpt(ctr, &last_reply), model_calls: ctr.calls })
        }
    })
}

/// The start of what the model wrote, for the error's detail: its visible text when it has any.
fn reply_excerpt<H: Host + ?Sized>(ctr: &mut Counting<H>, reply: &str) -> String {
    let host = &mut *ctr.host;
    let visible = visible_text(reply, &mut || host.check_interrupts());
    let text = if visible.trim().is_empty() { reply } else { visible.trim() };
    crate::extract::prefix(text, MAX_EXCERPT_BYTES).to_string()
}

/// Enough of a reply to show what the model did; the error's detail cuts it further.
const MAX_EXCERPT_BYTES: usize = 2000;

struct Ran {
    sql: String,
    result: ResultSet,
    attempts: u32,
}

/// Runs the candidate and repairs what fails, until a statement runs, the model repeats itself or
/// gives up, or `max_attempts` replies were asked for.
fn run_with_repairs<H: Host + ?Sized>(
    ctr: &mut Counting<H>,
    context: &Context,
    mut candidate: Candidate,
    mut attempts: u32,
    opts: &Options,
) -> Result<Ran> {
    let mut tried: Vec<String> = Vec::new();
    loop {
        tried.push(normalize_sql(candidate.text()));
        ctr.host.check_interrupts();
        let failure = match &candidate {
            Candidate::One(sql) => match ctr.host.execute(sql) {
                Ok(result) => return Ok(Ran { sql: sql.clone(), result, attempts }),
                Err(f) if f.is_cancel() => return Err(Error::Cancelled { message: f.message }),
                Err(f) => without_row_values(f, opts),
            },
            Candidate::Several(sql) => several_statements(sql),
        };
        if attempts >= opts.max_attempts.max(1) {
            return Err(give_up(candidate.text().to_string(), failure, tried_so_far(attempts, opts, ctr.calls)));
        }
        let message = &failure.message;
        let error_text = if failure.refusal.is_some() {
            format!("sqlchat refused this statement before running it: {message}")
        } else {
            format!("ERROR: {message} (SQLSTATE {})", failure.sqlstate)
        };
        let c = context;
        let failed = prompt::Failed { sql: candidate.text(), error: &error_text };
        let messages = prompt::repair_messages(c.question, c.schema, c.taught, c.history, c.summary, failed);
        let reply = ctr.chat(Purpose::Repair, &messages, opts.generation_temperature)?;
        attempts += 1;
        candidate = match ctr.extract(&reply) {
            Extracted::Sql(sql) if !tried.contains(&normalize_sql(&sql)) => Candidate::One(sql),
            Extracted::Several(sql) if !tried.contains(&normalize_sql(&sql)) => Candidate::Several(sql),
            // The model repeats itself or gives up: nothing more to learn from it.
            _ => return Err(give_up(candidate.text().to_string(), failure, tried_so_far(attempts, opts, ctr.calls))),
        };
    }
}

/// The refusal of a reply that holds several statements: none of them runs.
fn several_statements(sql: &str) -> ExecFailure {
    ExecFailure {
        sqlstate: "42501".into(),
        message: format!(
            "the reply holds {} statements; sqlchat runs exactly one query",
            sql::split_statements(sql).len()
        ),
        refusal: Some(Refusal::Statement),
        ..Default::default()
    }
}

fn tried_so_far(attempts: u32, opts: &Options, model_calls: u32) -> Tried {
    Tried { statements: attempts, limit: opts.max_attempts.max(1), model_calls }
}

/// The error of the last statement tried: `tried` counts the replies asked for SQL, their limit and
/// the model calls made.
fn give_up(sql: String, f: ExecFailure, tried: Tried) -> Error {
    match f.refusal {
        Some(kind) => Error::QueryRefused { sqlstate: f.sqlstate, kind, reason: f.message, sql, tried },
        None => Error::QueryFailed { sqlstate: f.sqlstate, message: f.message, sql, tried },
    }
}

/// Earlier turns as the model may see them: with send_rows = none their answers (which quote row
/// values) stay out.
fn turns_for_model<'t>(turns: &'t [Turn], opts: &Options) -> std::borrow::Cow<'t, [Turn]> {
    if opts.send_rows {
        return std::borrow::Cow::Borrowed(turns);
    }
    std::borrow::Cow::Owned(turns.iter().map(|t| Turn { answer: None, ..t.clone() }).collect())
}

/// A failure as the model, the caller and the interaction log may see it: when values read from
/// rows must stay in the database (send_rows = none, or the statement read a private column), an
/// error raised while the statement ran keeps only its SQLSTATE and condition name.
fn without_row_values(mut f: ExecFailure, opts: &Options) -> ExecFailure {
    if f.while_running && f.refusal.is_none() && (f.read_private || !opts.send_rows) {
        f.message = crate::result::withheld_message(&f.sqlstate);
    }
    f
}

/// A new summary of the turns the stored one does not cover yet, if there are any.
fn summary_step<H: Host + ?Sized>(ctr: &mut Counting<H>, req: &Request, opts: &Options) -> Result<Option<String>> {
    if req.unsummarized.is_empty() {
        return Ok(None);
    }
    let messages = prompt::summarize_messages(req.summary, &turns_for_model(req.unsummarized, opts));
    match ctr.chat(Purpose::Summarize, &messages, opts.summary_temperature) {
        Ok(reply) => {
            let host = &mut *ctr.host;
            Ok(prompt::parse_summary_reply(&reply, &mut || host.check_interrupts()))
        }
        Err(e) if e.is_cancel() => Err(e),
        // Without a summary the recent turns still carry the conversation.
        Err(_) => Ok(None),
    }
}

fn answer_step<H: Host + ?Sized>(
    ctr: &mut Counting<H>,
    question: &str,
    sql: &str,
    result: &ResultSet,
    opts: &Options,
) -> Result<(String, Vec<String>)> {
    // Values of private columns are never worded: not by the model, not into the stored answer.
    let result = &*result.masked();
    // sqlchat.send_rows = none: no row leaves the database, and the answer comes from a template.
    if !opts.send_rows {
        return Ok((prompt::template_answer(question, result), vec![]));
    }
    let (sample, shown) = result.sample_for_prompt(opts.send_rows_max, opts.send_rows_max_bytes);
    let msgs =
        prompt::answer_messages(question, sql, Some((sample.as_str(), shown)), result.rows.len(), result.truncated);
    match ctr.chat(Purpose::Answer, &msgs, opts.summary_temperature) {
        Ok(reply) => match prompt::parse_answer_reply(&reply, &mut || ctr.host.check_interrupts()) {
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

// ---- teaching: verified answers; worked examples, definitions and value vocabulary in the prompt ----

/// A taught question asked again: its SQL runs as the caller (never cached rows) and is answered
/// in words as any other, with no SQL-generation call. None when the statement no longer runs
/// (the schema moved on): the question is then answered as if it were not taught.
fn run_verified<H: Host + ?Sized>(
    host: &mut H,
    req: &Request,
    example: &Example,
    opts: &Options,
) -> Result<Option<Outcome>> {
    let tables: Vec<String> = example.tables().collect();
    host.tables_chosen("verified", &tables);
    let verified = Outcome {
        sql: Some(example.sql.clone()),
        tables,
        attempts: 1,
        engine: "verified",
        example_id: Some(example.id),
        ..Default::default()
    };
    if opts.sql_only {
        return Ok(Some(verified));
    }
    host.check_interrupts();
    let result = match host.execute(&example.sql) {
        Ok(rs) => rs,
        Err(f) if f.is_cancel() => return Err(Error::Cancelled { message: f.message }),
        Err(_) => return Ok(None),
    };
    let mut ctr = Counting { host, calls: 0 };
    let (answer, suggestions) = if opts.engine == Engine::Offline {
        (prompt::template_answer(req.question, &result.masked()), vec![])
    } else {
        answer_step(&mut ctr, req.question, &example.sql, &result, opts)?
    };
    Ok(Some(Outcome { answer, result: Some(result), suggestions, llm_calls: ctr.calls, ..verified }))
}

/// The SQL-generation prompt's parts for a question, as the pipeline sends them and
/// `sqlchat.explain` shows them.
pub struct SqlContext {
    /// The tables of the schema context (the caller's positions), ranked, then those the worked
    /// examples read.
    pub selected: Vec<usize>,
    pub schema: String,
    pub taught: prompt::Taught,
    /// The worked examples and definitions sent (indexes into the teaching's lists), and the
    /// stored spellings of values.
    pub examples: Vec<usize>,
    pub definitions: Vec<usize>,
    pub hints: Vec<values::Hint>,
}

/// Ranks the tables and picks what teaching adds for the question; value lookups go through `probe`.
pub fn sql_context(view: &View, req: &Request, opts: &Options, probe: &mut dyn offline::Probe) -> SqlContext {
    let catalog = req.catalog;
    let t = req.teaching;
    let mut selected = rank::select_tables(view, req.question, opts.schema_budget_tokens);
    let names: Vec<String> = selected.iter().map(|&i| catalog.tables[i].display_name()).collect();
    let usable = t.usable(catalog);
    let examples = teach::examples::choose(t, &usable, req.question, &names, opts.examples_budget_tokens);
    add_example_tables(req, &mut selected, &examples, opts.schema_budget_tokens);
    let definitions = teach::definitions::choose(t, req.question);
    // Stored values are row values: with send_rows = none none leaves the database.
    let hints = if opts.send_rows { value_hints(view, req, &selected, probe) } else { Vec::new() };
    let taught = prompt::Taught {
        examples: examples.iter().map(|&i| teach::render_example(&t.examples[i])).collect(),
        definitions: definitions.iter().map(|&i| teach::render_definition(&t.definitions[i])).collect(),
        value_hints: values::render(view, &hints),
    };
    SqlContext { schema: rank::render_schema(catalog, &selected), selected, taught, examples, definitions, hints }
}

/// Tables the worked examples read that the ranking left out join the schema context, within
/// half the schema budget again: the examples' SQL names them.
fn add_example_tables(req: &Request, selected: &mut Vec<usize>, examples: &[usize], budget_tokens: usize) {
    let catalog = req.catalog;
    let mut used: usize = rank::rendered_tokens(catalog, selected).iter().sum();
    let limit = budget_tokens + budget_tokens / 2;
    for &e in examples {
        for read in &req.teaching.examples[e].reads {
            let Some(i) = catalog.index_of(&read.schema, &read.table) else { continue };
            if selected.contains(&i) {
                continue;
            }
            let cost = rank::rendered_tokens(catalog, &[i])[0];
            if used + cost <= limit {
                selected.push(i);
                used += cost;
            }
        }
    }
}

/// The stored spellings of values the question names, in the readable, non-private text columns
/// of `tables`: enum labels, then pg_stats (one query), then a bounded scan of the columns of
/// plain tables that are small or never analysed (one query). A lookup that fails leaves its
/// columns out.
fn value_hints(view: &View, req: &Request, tables: &[usize], probe: &mut dyn offline::Probe) -> Vec<values::Hint> {
    let private = |t: usize, c: usize| req.teaching.is_private(req.catalog, t, c);
    let columns = values::candidate_columns(view, tables, &private);
    let mut found: HashMap<usize, Vec<String>> = HashMap::new();
    let mut lookup: Vec<usize> = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let labels = &req.catalog.tables[c.table].columns[c.column].enum_labels;
        if labels.is_empty() {
            lookup.push(i);
        } else {
            found.insert(i, labels.clone());
        }
    }
    if !lookup.is_empty() {
        let cols: Vec<values::ValueColumn> = lookup.iter().map(|&i| columns[i]).collect();
        let mut stored: HashMap<usize, Vec<String>> = HashMap::new();
        if let Ok(rs) = probe.query(&values::statistics_sql(view, &cols)) {
            values::read_rows(&rs, &mut stored);
        }
        let analysed: HashSet<usize> = stored.keys().filter_map(|&k| cols.get(k)).map(|c| c.table).collect();
        // Small tables are read whole: their statistics keep only the most common values.
        let small = |t: usize| (0.0..=values::SCAN_ROWS as f64).contains(&req.catalog.tables[t].row_estimate);
        let scan: Vec<(usize, values::ValueColumn)> = (0..cols.len())
            .filter(|&k| {
                let t = cols[k].table;
                (!analysed.contains(&t) || small(t)) && scannable(&req.catalog.tables[t])
            })
            .take(values::MAX_SCAN_COLUMNS)
            .map(|k| (k, cols[k]))
            .collect();
        if !scan.is_empty() {
            if let Ok(rs) = probe.query(&values::scan_sql(view, &scan)) {
                values::read_rows(&rs, &mut stored);
            }
        }
        for (k, v) in stored {
            if let Some(&i) = lookup.get(k) {
                found.insert(i, v);
            }
        }
    }
    let values: Vec<(values::ValueColumn, Vec<String>)> =
        columns.iter().enumerate().filter_map(|(i, c)| found.remove(&i).map(|v| (*c, v))).collect();
    values::hints(view, req.question, tables, &values)
}

/// Tables whose first rows are cheap to read (not views or foreign tables, which may compute or
/// fetch every row first).
fn scannable(table: &crate::catalog::Table) -> bool {
    matches!(table.kind, crate::catalog::TableKind::Table | crate::catalog::TableKind::MaterializedView)
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
            private: vec![],
        }
    }

    fn fail(msg: &str) -> ExecFailure {
        ExecFailure { sqlstate: "42703".into(), message: msg.into(), ..Default::default() }
    }

    fn req<'a>(c: &'a Catalog) -> Request<'a> {
        Request {
            question: "how many orders?",
            catalog: c,
            index: None,
            history: &[],
            summary: None,
            unsummarized: &[],
            teaching: &crate::teach::NOTHING_TAUGHT,
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
        // The repeated statement is the model's second attempt; it is not run again.
        let Error::QueryFailed { tried, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*tried, Tried { statements: 2, limit: 3, model_calls: 2 });
        assert!(err.to_string().contains("after 2 attempts and 2 model calls"), "{err}");
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

    fn script(replies: &[&str], exec: Vec<std::result::Result<ResultSet, ExecFailure>>) -> Script {
        Script {
            replies: replies.iter().map(|r| Ok(r.to_string())).collect(),
            exec,
            purposes: vec![],
            executed: vec![],
        }
    }

    #[test]
    fn text_instead_of_sql_gets_one_request_for_the_sql_alone() {
        let c = catalog();
        let prose = "Sure! The number of orders can be found by counting the rows of the orders table.";
        let mut h = script(&[prose, "SELECT count(*) FROM orders", "{\"answer\": \"3 orders\"}"], vec![Ok(rows())]);
        let out = run(&mut h, &req(&c), &Options::default()).unwrap();
        assert_eq!(h.purposes, vec![Purpose::GenerateSql, Purpose::Repair, Purpose::Answer]);
        assert_eq!((out.attempts, out.llm_calls), (2, 3));
        assert_eq!(out.answer, "3 orders");
        assert!(!out.refusal);
    }

    #[test]
    fn text_twice_is_no_sql_and_never_an_answer() {
        let c = catalog();
        let mut h = script(&["There are 42 orders.", r#"{"sql": "", "explanation": "42 orders"}"#], vec![]);
        let err = run(&mut h, &req(&c), &Options::default()).unwrap_err();
        assert!(matches!(&err, Error::NoSql { reply, model_calls: 2 } if reply.contains("explanation")), "{err:?}");
        assert_eq!(err.sqlstate(), "22000");
        assert_eq!(h.purposes, vec![Purpose::GenerateSql, Purpose::Repair]);
        assert!(h.executed.is_empty());
    }

    #[test]
    fn the_extra_request_counts_against_max_attempts() {
        let c = catalog();
        let mut h = script(&["Let me think.", "SELECT 1"], vec![]);
        let err = run(&mut h, &req(&c), &Options { max_attempts: 1, ..Options::default() }).unwrap_err();
        assert_eq!(err.sqlstate(), "22000");
        assert_eq!(h.purposes, vec![Purpose::GenerateSql]);
        // Two attempts: the extra request, then no repair is left.
        let mut h =
            script(&["Let me think.", "SELECT nope FROM orders", "SELECT count(*) FROM orders"], vec![Err(fail("no"))]);
        let err = run(&mut h, &req(&c), &Options { max_attempts: 2, ..Options::default() }).unwrap_err();
        assert!(matches!(err, Error::QueryFailed { tried: Tried { statements: 2, .. }, .. }), "{err:?}");
        assert_eq!(h.purposes, vec![Purpose::GenerateSql, Purpose::Repair]);
    }

    #[test]
    fn a_plain_refusal_is_an_answer_without_another_request() {
        let c = catalog();
        let mut h = script(&["The database does not contain weather data."], vec![]);
        let out = run(&mut h, &req(&c), &Options::default()).unwrap();
        assert!(out.refusal && out.sql.is_none());
        assert_eq!(out.answer, "This question cannot be answered from the tables you can read: The database does not contain weather data.");
        assert_eq!((out.attempts, out.llm_calls), (1, 1));
    }

    #[test]
    fn several_statements_are_refused_without_running_then_repaired() {
        let c = catalog();
        let mut h = script(
            &["SELECT count(*) FROM orders; DELETE FROM orders;", "SELECT count(*) FROM orders", "{}"],
            vec![Ok(rows())],
        );
        let out = run(&mut h, &req(&c), &Options::default()).unwrap();
        assert_eq!(h.executed, vec!["SELECT count(*) FROM orders"]);
        assert_eq!(out.attempts, 2);
        let mut h = script(&["SELECT 1; SELECT 2"], vec![]);
        let err = run(&mut h, &req(&c), &Options { sql_only: true, ..Options::default() }).unwrap_err();
        assert!(matches!(&err, Error::QueryRefused { reason, .. } if reason.contains("2 statements")), "{err:?}");
        assert_eq!(err.sqlstate(), "42501");
        assert!(h.executed.is_empty());
    }

    /// A host whose interrupt check unwinds once `cancel_after` checks have passed, as the
    /// extension's does on a cancel.
    struct Cancelling {
        script: Script,
        checks: usize,
        cancel_after: usize,
    }

    impl Host for Cancelling {
        fn chat(&mut self, purpose: Purpose, m: &[Message], t: f64) -> Result<String> {
            self.script.chat(purpose, m, t)
        }
        fn execute(&mut self, sql: &str) -> std::result::Result<ResultSet, ExecFailure> {
            self.script.execute(sql)
        }
        fn check_interrupts(&mut self) {
            self.checks += 1;
            if self.checks > self.cancel_after {
                std::panic::resume_unwind(Box::new("canceling statement due to user request"));
            }
        }
    }

    #[test]
    fn interrupts_are_checked_between_steps_and_during_long_replies() {
        let c = catalog();
        let long = format!("<think>{}</think>SELECT count(*) FROM orders", "x".repeat(1 << 20));
        let mut h =
            Cancelling { script: script(&[&long, "{}"], vec![Ok(rows())]), checks: 0, cancel_after: usize::MAX };
        run(&mut h, &req(&c), &Options::default()).unwrap();
        let total = h.checks;
        assert!(total >= 16 + 4, "{total} checks for a 1 MiB reply and two calls");
        for cancel_after in [0, 1, 8, total - 1] {
            let mut h = Cancelling { script: script(&[&long, "{}"], vec![Ok(rows())]), checks: 0, cancel_after };
            let ended =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut h, &req(&c), &Options::default())));
            assert!(ended.is_err(), "cancel after {cancel_after} checks");
            assert_eq!(h.checks, cancel_after + 1);
        }
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
        let Error::QueryFailed { tried, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*tried, Tried { statements: 3, limit: 3, model_calls: 3 });
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
                ..Default::default()
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
    fn values_met_in_rows_stay_out_of_error_texts_when_rows_must() {
        let running = |message: &str, read_private| ExecFailure {
            sqlstate: "22P02".into(),
            message: message.into(),
            while_running: true,
            read_private,
            ..Default::default()
        };
        let m = r#"invalid input syntax for type integer: "DIAGNOSIS-7731""#;
        let none = Options { send_rows: false, ..Options::default() };
        let sample = Options::default();
        let masked = crate::result::withheld_message("22P02");
        assert_eq!(without_row_values(running(m, false), &none).message, masked);
        assert_eq!(without_row_values(running(m, true), &sample).message, masked);
        assert_eq!(without_row_values(running(m, false), &sample).message, m);
        // Parsing and analysis read no rows: their names help the repair.
        let analysis = ExecFailure { message: r#"column "nope" does not exist"#.into(), ..running("", true) };
        let analysis = ExecFailure { while_running: false, ..analysis };
        assert_eq!(without_row_values(analysis.clone(), &none).message, analysis.message);
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
            teaching: &crate::teach::NOTHING_TAUGHT,
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

    /// A session whose earlier turns the offline engine answered, the last one in 2025.
    fn offline_session(c: &Catalog) -> Vec<Turn> {
        let sql = |year: i32| {
            format!(
                "SELECT count(*) AS count FROM public.orders WHERE placed_on >= DATE '{year}-01-01' \
                 AND placed_on < DATE '{}-01-01'",
                year + 1
            )
        };
        let turn = |question: &str, year: i32| Turn { question: question.into(), sql: Some(sql(year)), answer: None };
        let session = vec![turn("How many orders were there in 2023?", 2023), turn("and in 2025?", 2025)];
        // The SQL is the offline engine's reading of each question as it stood.
        let view = View::new(c, None);
        for (question, year) in
            [("How many orders were there in 2023?", 2023), ("How many orders were there in 2025", 2025)]
        {
            let offline::Decision::Answer(p) = offline::plan(&view, question, &mut NoProbe) else {
                panic!("{question}")
            };
            assert_eq!(p.sql, sql(year));
        }
        session
    }

    struct NoProbe;

    impl offline::Probe for NoProbe {
        fn query(&mut self, _sql: &str) -> std::result::Result<ResultSet, String> {
            Ok(ResultSet::default())
        }
        fn is_private(&self, _table: usize, _column: usize) -> bool {
            false
        }
    }

    fn with_placed_on() -> Catalog {
        let mut c = catalog();
        c.tables[0].columns.push(Column::new("placed_on", "date", 'D'));
        c
    }

    #[test]
    fn follow_ups_build_on_the_previous_turn_offline_and_in_auto() {
        let c = with_placed_on();
        let history = offline_session(&c);
        let request = Request { question: "and in 2024?", history: &history, ..req(&c) };
        for engine in [Engine::Offline, Engine::Auto] {
            let mut h = Script { replies: vec![], exec: vec![Ok(rows())], purposes: vec![], executed: vec![] };
            let out = run(&mut h, &request, &Options { engine, ..Options::default() }).unwrap();
            let sql = out.sql.unwrap_or_default();
            assert!(sql.contains("'2024-01-01'") && sql.contains("'2025-01-01'"), "{engine:?}: {sql}");
            assert_eq!(out.engine, "offline");
            assert!(h.purposes.is_empty(), "{engine:?}: no model call");
        }
    }

    #[test]
    fn follow_ups_of_turns_read_otherwise_go_to_the_model() {
        let c = with_placed_on();
        let mut history = offline_session(&c);
        // The model answered the last turn (its SQL is not the offline engine's reading).
        history[1].sql = Some("SELECT count(*) FROM orders WHERE extract(year FROM placed_on) = 2025".into());
        let request = Request { question: "and in 2024?", history: &history, ..req(&c) };
        let mut h = Script {
            replies: vec![Ok("SELECT 1".into()), Ok(r#"{"answer":"3."}"#.into())],
            exec: vec![Ok(rows())],
            purposes: vec![],
            executed: vec![],
        };
        let out = run(&mut h, &request, &Options { engine: Engine::Auto, ..Options::default() }).unwrap();
        assert_eq!(out.engine, "llm");
        // A question that stands alone in a session is the model's too in auto mode.
        let history = offline_session(&c);
        let request = Request { question: "How many orders are there?", history: &history, ..req(&c) };
        let mut h = Script {
            replies: vec![Ok("SELECT 1".into()), Ok(r#"{"answer":"3."}"#.into())],
            exec: vec![Ok(rows())],
            purposes: vec![],
            executed: vec![],
        };
        let out = run(&mut h, &request, &Options { engine: Engine::Auto, ..Options::default() }).unwrap();
        assert_eq!(out.engine, "llm");
        // Offline, a follow-up of a declined turn declines.
        history_declined(&c);
    }

    fn history_declined(c: &Catalog) {
        let history = [Turn { question: "How many orders were refunded?".into(), sql: None, answer: None }];
        let request = Request { question: "and in 2024?", history: &history, ..req(c) };
        let mut h = Script { replies: vec![], exec: vec![], purposes: vec![], executed: vec![] };
        let out = run(&mut h, &request, &Options { engine: Engine::Offline, ..Options::default() }).unwrap();
        assert!(out.sql.is_none() && out.refusal, "{}", out.answer);
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
            teaching: &crate::teach::NOTHING_TAUGHT,
        };
        let cancel = ExecFailure {
            sqlstate: "57014".into(),
            message: "canceling statement due to user request".into(),
            ..Default::default()
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
        assert_eq!(validate_session_id(Some(" s1 ")).unwrap(), Some("s1"));
        assert_eq!(validate_session_id(Some("  ")).unwrap(), None);
        let long = "s".repeat(MAX_SESSION_ID_BYTES + 1);
        assert_eq!(validate_session_id(Some(&long)).unwrap_err().sqlstate(), "22023");
    }
    // ---- teaching ----

    /// A host that answers value lookups from `stats` rows, runs everything else as `rows()`, and
    /// keeps every request's messages.
    struct TeachingHost {
        replies: Vec<String>,
        requests: Vec<(Purpose, String)>,
        executed: Vec<String>,
        stats: ResultSet,
        result: ResultSet,
    }

    impl Host for TeachingHost {
        fn chat(&mut self, purpose: Purpose, m: &[Message], _t: f64) -> Result<String> {
            self.requests.push((purpose, m.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n")));
            if self.replies.is_empty() {
                return Err(Error::GatewayStatus { status: 500, body: String::new() });
            }
            Ok(self.replies.remove(0))
        }
        fn execute(&mut self, sql: &str) -> std::result::Result<ResultSet, ExecFailure> {
            self.executed.push(sql.to_string());
            Ok(if sql.contains("pg_stats") { self.stats.clone() } else { self.result.clone() })
        }
    }

    fn teaching_host(replies: &[&str]) -> TeachingHost {
        TeachingHost {
            replies: replies.iter().map(|r| r.to_string()).collect(),
            requests: vec![],
            executed: vec![],
            stats: ResultSet::default(),
            result: rows(),
        }
    }

    fn shop() -> Catalog {
        let mut c = catalog();
        c.tables[0].columns.push(Column::new("city", "text", 'S'));
        c.tables[0].columns.push(Column::new("ssn", "text", 'S'));
        c
    }

    fn taught() -> Teaching {
        Teaching::new(
            vec![Example {
                id: 7,
                question: "How many orders came from the top 5 cities?".into(),
                sql: "SELECT count(*) FROM public.orders".into(),
                note: Some("cities by order count".into()),
                reads: vec![teach::Read {
                    schema: "public".into(),
                    table: "orders".into(),
                    columns: vec!["city".into()],
                }],
            }],
            vec![teach::Definition { id: 1, term: None, meaning: "Orders are counted once.".into() }],
            vec![("public".into(), "orders".into(), "ssn".into())],
        )
    }

    #[test]
    fn a_taught_question_asked_again_reuses_its_sql_without_a_generation_call() {
        let c = shop();
        let t = taught();
        let request = Request { question: "how many orders came from the TOP 5 cities", teaching: &t, ..req(&c) };
        let mut h = teaching_host(&[r#"{"answer": "3 orders."}"#]);
        let out = run(&mut h, &request, &Options::default()).unwrap();
        assert_eq!((out.engine, out.example_id, out.llm_calls), ("verified", Some(7), 1));
        assert_eq!(h.requests.iter().map(|r| r.0).collect::<Vec<_>>(), [Purpose::Answer]);
        assert_eq!(h.executed, ["SELECT count(*) FROM public.orders"]);
        assert_eq!(out.sql.as_deref(), Some("SELECT count(*) FROM public.orders"));
        // generate_sql returns it without running anything.
        let mut h = teaching_host(&[]);
        let out = run(&mut h, &request, &Options { sql_only: true, ..Options::default() }).unwrap();
        assert_eq!((out.engine, out.llm_calls, h.executed.len()), ("verified", 0, 0));
    }

    #[test]
    fn a_changed_number_gets_the_example_as_a_worked_example_only() {
        let c = shop();
        let t = taught();
        let request = Request { question: "How many orders came from the top 10 cities?", teaching: &t, ..req(&c) };
        let mut h = teaching_host(&["SELECT count(*) FROM orders", "{}"]);
        let out = run(&mut h, &request, &Options::default()).unwrap();
        assert_eq!((out.engine, out.example_id), ("llm", None));
        let (purpose, prompt) = &h.requests[0];
        assert_eq!(*purpose, Purpose::GenerateSql);
        assert!(prompt.contains("<examples>\nQuestion: How many orders came from the top 5 cities?"), "{prompt}");
        assert!(prompt.contains("<definitions>\nAlways: Orders are counted once.\n</definitions>"), "{prompt}");
        // A caller who cannot read what the example reads never sees it.
        let mut hidden = shop();
        hidden.tables[0].columns.retain(|col| col.name != "city");
        let request =
            Request { question: "How many orders came from the top 10 cities?", teaching: &t, ..req(&hidden) };
        let mut h = teaching_host(&["SELECT count(*) FROM orders", "{}"]);
        run(&mut h, &request, &Options::default()).unwrap();
        assert!(!h.requests[0].1.contains("top 5 cities"), "{}", h.requests[0].1);
    }

    #[test]
    fn stored_spellings_go_beside_their_column_and_private_columns_are_never_looked_up() {
        let c = shop();
        let t = taught();
        let request = Request { question: "how many orders from sao paulo?", teaching: &t, ..req(&c) };
        let mut h = teaching_host(&["SELECT count(*) FROM orders WHERE city = 'São Paulo'", "{}"]);
        h.stats = ResultSet {
            columns: vec![],
            rows: vec![vec![json!(0), json!(["São Paulo", "Oslo"]), serde_json::Value::Null]],
            ..Default::default()
        };
        run(&mut h, &request, &Options::default()).unwrap();
        let lookup = h.executed.iter().find(|q| q.contains("pg_stats")).expect("a statistics lookup");
        assert!(lookup.contains("'city'") && !lookup.contains("'ssn'"), "{lookup}");
        assert!(h.requests[0].1.contains("-- public.orders.city values include 'São Paulo'"), "{}", h.requests[0].1);
    }

    #[test]
    fn private_values_are_never_worded() {
        let c = shop();
        let request = Request { question: "what is the ssn of order 1?", ..req(&c) };
        let mut h = teaching_host(&["SELECT ssn FROM orders WHERE id = 1", "{\"answer\": \"hidden\"}"]);
        h.result = ResultSet {
            columns: vec![ResultColumn { name: "ssn".into(), type_name: "text".into(), category: 'S' }],
            rows: vec![vec![json!("123-45-6789")]],
            private: vec![0],
            ..Default::default()
        };
        let out = run(&mut h, &request, &Options::default()).unwrap();
        let answer_prompt = &h.requests.iter().find(|r| r.0 == Purpose::Answer).unwrap().1;
        assert!(!answer_prompt.contains("123-45-6789") && answer_prompt.contains("(private)"), "{answer_prompt}");
        assert_eq!(out.result.unwrap().rows[0][0], json!("123-45-6789"), "the caller still gets the value");
        let mut h = teaching_host(&["SELECT ssn FROM orders WHERE id = 1"]);
        h.result = ResultSet { rows: vec![vec![json!("123-45-6789")]], private: vec![0], ..rows() };
        let out = run(&mut h, &request, &Options { send_rows: false, ..Options::default() }).unwrap();
        assert!(!out.answer.contains("123-45-6789"), "{}", out.answer);
    }
}
