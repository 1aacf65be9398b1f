//! Every `sqlchat.*` setting: the statics, their registration, and typed getters.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;
use std::ffi::CString;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum EngineSetting {
    /// offline when no gateway is configured, llm otherwise
    #[name = c"default"]
    Default,
    #[name = c"llm"]
    Llm,
    #[name = c"offline"]
    Offline,
    #[name = c"auto"]
    Auto,
}

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendRows {
    #[name = c"none"]
    None,
    #[name = c"sample"]
    Sample,
}

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum RlsBypass {
    #[name = c"warn"]
    Warn,
    #[name = c"refuse"]
    Refuse,
    #[name = c"allow"]
    Allow,
}

static API_BASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static API_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static AUTH_HEADER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static API_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"gpt-4o-mini"));
static FALLBACK_MODELS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ALLOWED_FUNCTIONS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static REQUEST_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
static REQUEST_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(2);
static QUERY_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);
static WORK_MEM_KB: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);
static MAX_RESULT_KB: GucSetting<i32> = GucSetting::<i32>::new(16 * 1024);
static TEMP_FILE_LIMIT_KB: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
static MAX_COST: GucSetting<f64> = GucSetting::<f64>::new(0.0);
static MAX_ROWS: GucSetting<i32> = GucSetting::<i32>::new(1000);
static MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(3);
static MAX_HISTORY: GucSetting<i32> = GucSetting::<i32>::new(5);
static CACHE_TTL: GucSetting<i32> = GucSetting::<i32>::new(300);
static PROMPT_BUDGET: GucSetting<i32> = GucSetting::<i32>::new(1500);
static ENABLE_CACHE: GucSetting<bool> = GucSetting::<bool>::new(true);
static GENERATION_TEMPERATURE: GucSetting<f64> = GucSetting::<f64>::new(0.0);
static SUMMARY_TEMPERATURE: GucSetting<f64> = GucSetting::<f64>::new(0.3);
static SUGGESTION_TEMPERATURE: GucSetting<f64> = GucSetting::<f64>::new(0.5);
static ENGINE: GucSetting<EngineSetting> = GucSetting::<EngineSetting>::new(EngineSetting::Default);
static SEND_ROWS: GucSetting<SendRows> = GucSetting::<SendRows>::new(SendRows::Sample);
static RLS_BYPASS: GucSetting<RlsBypass> = GucSetting::<RlsBypass>::new(RlsBypass::Warn);

// --- operations: statistics, slow log, progress ---
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogQuestions {
    #[name = c"on"]
    On,
    #[name = c"off"]
    Off,
    #[name = c"hash"]
    Hash,
}

static TRACK_STATS: GucSetting<bool> = GucSetting::<bool>::new(true);
static LOG_MIN_DURATION_MS: GucSetting<i32> = GucSetting::<i32>::new(-1);
static LOG_QUESTIONS: GucSetting<LogQuestions> = GucSetting::<LogQuestions>::new(LogQuestions::On);
static PROGRESS: GucSetting<bool> = GucSetting::<bool>::new(false);
// the interaction log (sqlchat.log)
static LOG_ASKS: GucSetting<bool> = GucSetting::<bool>::new(true);
static AUDITOR_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LOG_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(30 * 86_400);
static LOG_BUFFER_KB: GucSetting<i32> = GucSetting::<i32>::new(1024);

fn init_ops() {
    GucRegistry::define_bool_guc(
        c"sqlchat.track_stats",
        c"Count asks, gateway requests, tokens and times in shared memory (sqlchat.stats, sqlchat.metrics()).",
        c"Needs sqlchat in shared_preload_libraries. Quotas are kept whatever this says.",
        &TRACK_STATS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.log_min_duration_ms",
        c"Asks that take at least this long are written to the server log as one JSON line (-1: none, 0: every ask).",
        c"The line has the role, session, question (see sqlchat.log_questions), SQL, engine and the time of each step.",
        &LOG_MIN_DURATION_MS,
        -1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_enum_guc(
        c"sqlchat.log_questions",
        c"Whether logs keep the question's text: on, off, or hash (its SHA-256, which still shows repeats).",
        c"",
        &LOG_QUESTIONS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"sqlchat.log_asks",
        c"Write a row for every ask to sqlchat.log, through a background worker (kept when the caller's transaction rolls back).",
        c"Needs sqlchat in shared_preload_libraries. sqlchat.log_questions applies to the question kept.",
        &LOG_ASKS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"sqlchat.auditor_role",
        c"Members of this role read every row of sqlchat.log; other roles read their own.",
        c"Superusers always read every row.",
        &AUDITOR_ROLE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.log_retention",
        c"How long rows of sqlchat.log are kept before a background worker removes them (0: kept until removed by hand).",
        c"",
        &LOG_RETENTION,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    // Read at server start only; PostgreSQL refuses to define it once the server runs.
    if preloaded() {
        define_log_buffer();
    }
    GucRegistry::define_bool_guc(
        c"sqlchat.progress",
        c"Send a NOTICE at each step of an ask (tables chosen, waiting for the model, running the SQL...) with its time.",
        c"",
        &PROGRESS,
        GucContext::Userset,
        GucFlags::default(),
    );
}

fn define_log_buffer() {
    GucRegistry::define_int_guc(
        c"sqlchat.log_buffer",
        c"Shared memory holding sqlchat.log rows until the background worker writes them; a row that does not fit is dropped and counted.",
        c"Set at server start.",
        &LOG_BUFFER_KB,
        64,
        1024 * 1024,
        GucContext::Postmaster,
        GucFlags::UNIT_KB,
    );
}

pub fn track_stats() -> bool {
    TRACK_STATS.get()
}

/// -1: no slow log.
pub fn log_min_duration_ms() -> i64 {
    i64::from(LOG_MIN_DURATION_MS.get())
}

pub fn log_questions() -> sqlchat_core::ops::record::QuestionText {
    use sqlchat_core::ops::record::QuestionText;
    match LOG_QUESTIONS.get() {
        LogQuestions::On => QuestionText::On,
        LogQuestions::Off => QuestionText::Off,
        LogQuestions::Hash => QuestionText::Hash,
    }
}

pub fn progress() -> bool {
    PROGRESS.get()
}

pub fn log_asks() -> bool {
    LOG_ASKS.get()
}

/// The role whose members read all of sqlchat.log, if one is named.
pub fn auditor_role() -> Option<String> {
    string(&AUDITOR_ROLE)
}

/// 0: rows are kept for ever.
pub fn log_retention_s() -> i64 {
    i64::from(LOG_RETENTION.get().max(0))
}

pub fn log_buffer_bytes() -> usize {
    LOG_BUFFER_KB.get().max(64) as usize * 1024
}
// --- end of operations ---

// ---- teaching (src/teach/) ----
static TEACHER_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static EXAMPLES_BUDGET: GucSetting<i32> = GucSetting::<i32>::new(400);

fn init_teach() {
    GucRegistry::define_string_guc(
        c"sqlchat.teacher_role",
        c"Members of this role may teach examples and definitions (besides superusers and the extension's owner).",
        c"What is taught reaches every role's prompts.",
        &TEACHER_ROLE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.examples_budget_tokens",
        c"Token budget (characters/4) of the worked examples in the SQL-generation prompt.",
        c"0: no worked examples (a taught question asked again is still answered with its SQL).",
        &EXAMPLES_BUDGET,
        0,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn teacher_role() -> Option<String> {
    string(&TEACHER_ROLE)
}

pub fn examples_budget_tokens() -> usize {
    EXAMPLES_BUDGET.get().max(0) as usize
}
// ---- end of teaching ----

// ---- background asks (src/jobs/) ----
static MAX_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(2);
static JOB_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(86_400);
static MAX_QUEUED_JOBS: GucSetting<i32> = GucSetting::<i32>::new(100);
static WORKER_IDLE_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(10);
static JOB_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(600);

/// Whether the library was loaded by shared_preload_libraries, so that the `sqlchat.*` settings
/// existed, with their protection, before any session's first command.
static PRELOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn preloaded() -> bool {
    PRELOADED.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn init() {
    PRELOADED
        .store(unsafe { pg_sys::process_shared_preload_libraries_in_progress }, std::sync::atomic::Ordering::Relaxed);
    // Secrets: settable only where the server's configuration lives (SIGHUP: postgresql.conf or
    // ALTER SYSTEM), never by SET, ALTER ROLE or ALTER DATABASE; readable by superusers only.
    let secret = GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL;
    GucRegistry::define_string_guc(
        c"sqlchat.api_base",
        c"Base URL of the OpenAI-compatible LLM gateway, e.g. https://api.openai.com/v1.",
        c"Requests go to {api_base}/chat/completions. Empty: no gateway (the offline engine answers what it can).",
        &API_BASE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"sqlchat.api_key",
        c"API key sent as a bearer token to the gateway.",
        c"Set in postgresql.conf or with ALTER SYSTEM, or in the server's environment as SQLCHAT_API_KEY. Visible to superusers only.",
        &API_KEY,
        GucContext::Sighup,
        secret,
    );
    GucRegistry::define_string_guc(
        c"sqlchat.api_key_file",
        c"A file holding the API key (its first line), read at each call, instead of sqlchat.api_key.",
        c"Keeps the key out of the configuration files and out of the server log. Readable by the server's user only, ideally.",
        &API_KEY_FILE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"sqlchat.auth_header",
        c"A full Authorization header value for the gateway, used instead of the bearer key.",
        c"For gateways that want another scheme. Set in postgresql.conf or with ALTER SYSTEM. Visible to superusers only.",
        &AUTH_HEADER,
        GucContext::Sighup,
        secret,
    );
    GucRegistry::define_string_guc(
        c"sqlchat.ca_file",
        c"PEM file of extra CA certificates trusted for an https gateway (a private CA), besides the system's roots.",
        c"Set by superusers only. Certificates are always verified; there is no setting that turns verification off.",
        &CA_FILE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"sqlchat.model",
        c"Model name sent to the gateway.",
        c"",
        &MODEL,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"sqlchat.fallback_models",
        c"Comma-separated models tried in order when the main model fails.",
        c"After the retries of the main model: on rate limiting, gateway errors, timeouts and unusable replies; not on a refused key, TLS failure or redirect.",
        &FALLBACK_MODELS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"sqlchat.allowed_functions",
        c"Comma-separated functions that generated SQL may call beyond the built-in policy: schema.name, or a bare name for a built-in (pg_catalog) function.",
        c"Set by superusers only. Every function listed runs with the caller's rights inside the read-only sandbox.",
        &ALLOWED_FUNCTIONS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.request_timeout_ms",
        c"Longest wait for one gateway request, in milliseconds.",
        c"Each attempt (connect, TLS, headers and body) ends by this deadline, and by the statement's statement_timeout.",
        &REQUEST_TIMEOUT_MS,
        100,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"sqlchat.request_retries",
        c"Retries of one gateway request on HTTP 429, 502, 503, 504 or a broken connection, before the fallback models.",
        c"Back-off is exponential with jitter, or the gateway's Retry-After; never beyond the statement's remaining time or sqlchat.request_timeout_ms.",
        &REQUEST_RETRIES,
        0,
        10,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.query_timeout_ms",
        c"Longest run of one generated query, in milliseconds (0: no limit of sqlchat's own).",
        c"",
        &QUERY_TIMEOUT_MS,
        0,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    // Resource limits of generated queries: an administrator's policy, so superuser-only.
    GucRegistry::define_int_guc(
        c"sqlchat.max_result_bytes",
        c"Most bytes of result values (as text) a generated query returns; rows past it are cut off.",
        c"Bounds the backend's memory for one answer whatever sqlchat.max_rows allows.",
        &MAX_RESULT_KB,
        64,
        1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"sqlchat.work_mem",
        c"Most memory a sort or hash of a generated query may use before spilling (0: the caller's work_mem).",
        c"The caller's work_mem applies when it is lower.",
        &WORK_MEM_KB,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"sqlchat.temp_file_limit",
        c"Most temporary file space a generated query may use (0: the server's temp_file_limit).",
        c"The server's temp_file_limit applies when it is lower.",
        &TEMP_FILE_LIMIT_KB,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_float_guc(
        c"sqlchat.max_cost",
        c"Highest planner cost estimate a generated query may have; above it the query is refused before it runs (0: no cost gate).",
        c"Refused queries go back to the model for a cheaper rewrite. Compare with EXPLAIN's total cost.",
        &MAX_COST,
        0.0,
        1e15,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.max_rows",
        c"Most rows a generated query may return.",
        c"",
        &MAX_ROWS,
        1,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.max_attempts",
        c"Most replies asked of the model for SQL for one question (the first, one request for the SQL alone, repairs).",
        c"",
        &MAX_ATTEMPTS,
        1,
        10,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.max_history",
        c"Earlier turns of a session sent in full with a question.",
        c"",
        &MAX_HISTORY,
        0,
        50,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.cache_ttl",
        c"Seconds a cached generated statement is reused.",
        c"",
        &CACHE_TTL,
        0,
        31_536_000,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"sqlchat.schema_budget_tokens",
        c"Token budget (characters/4) of the schema context in the SQL-generation prompt.",
        c"",
        &PROMPT_BUDGET,
        100,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"sqlchat.enable_cache",
        c"Reuse generated SQL for a repeated question in the same context.",
        c"",
        &ENABLE_CACHE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"sqlchat.generation_temperature",
        c"Temperature of SQL generation and repair requests.",
        c"",
        &GENERATION_TEMPERATURE,
        0.0,
        2.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"sqlchat.summary_temperature",
        c"Temperature of answer and summary requests.",
        c"",
        &SUMMARY_TEMPERATURE,
        0.0,
        2.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"sqlchat.suggestion_temperature",
        c"Temperature of chart suggestion requests.",
        c"",
        &SUGGESTION_TEMPERATURE,
        0.0,
        2.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"sqlchat.engine",
        c"Who writes the SQL: llm, offline (built-in, no LLM), auto (offline when confident, else llm), or default.",
        c"default means offline when sqlchat.api_base is empty, llm otherwise.",
        &ENGINE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"sqlchat.send_rows",
        c"Whether a sample of result rows (at most 20 rows / 4 KB) goes to the LLM to word the answer: sample or none.",
        c"With none, answers come from templates and no row leaves the database.",
        &SEND_ROWS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"sqlchat.rls_bypass",
        c"What to do when the caller bypasses row-level security on a table a query reads: warn, refuse or allow.",
        c"",
        &RLS_BYPASS,
        GucContext::Suset,
        GucFlags::default(),
    );
    init_ops();
    init_jobs();
    init_teach();
    unsafe { pg_sys::MarkGUCPrefixReserved(c"sqlchat".as_ptr()) };
}

// ---- background asks (src/jobs/) ----

fn init_jobs() {
    GucRegistry::define_int_guc(
        c"sqlchat.max_workers",
        c"Most background workers running submitted jobs at once, over all databases (0: jobs stay queued).",
        c"Each counts against max_worker_processes, as does sqlchat's launcher.",
        &MAX_WORKERS,
        0,
        crate::jobs::MAX_WORKERS as i32,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.job_retention",
        c"How long finished background jobs (answers, errors) are kept before a worker removes them.",
        c"",
        &JOB_RETENTION,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"sqlchat.max_queued_jobs",
        c"Most jobs one role may have queued in a database; sqlchat.submit refuses more (53400).",
        c"Queued jobs are taken one role after another, so a long queue delays other roles little.",
        &MAX_QUEUED_JOBS,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"sqlchat.job_timeout",
        c"Longest run of one background job, whatever its own statement_timeout says (0: none).",
        c"The submitting role chooses its job's other limits; this one keeps any job from holding a worker for long.",
        &JOB_TIMEOUT,
        0,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"sqlchat.worker_idle_timeout",
        c"How long a background worker waits for more jobs before it ends.",
        c"",
        &WORKER_IDLE_TIMEOUT,
        0,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
}

pub fn max_workers() -> usize {
    MAX_WORKERS.get().max(0) as usize
}

pub fn max_queued_jobs() -> i64 {
    MAX_QUEUED_JOBS.get().max(1) as i64
}

pub fn job_retention_s() -> i64 {
    JOB_RETENTION.get().max(0) as i64
}

pub fn job_timeout_ms() -> i32 {
    JOB_TIMEOUT.get().clamp(0, 86_400) * 1000
}

pub fn worker_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(WORKER_IDLE_TIMEOUT.get().max(0) as u64)
}

fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().and_then(|c| c.into_string().ok()).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn list(setting: &GucSetting<Option<CString>>) -> Vec<String> {
    string(setting)
        .map(|s| s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
        .unwrap_or_default()
}

pub fn api_base() -> Option<String> {
    string(&API_BASE).map(|s| s.trim_end_matches('/').to_string())
}

/// The key from sqlchat.api_key, else SQLCHAT_API_KEY in the server's environment, else the first
/// line of sqlchat.api_key_file (an unreadable file is an error that names the setting). A key in
/// a setting is used only when the library is preloaded: otherwise any role could read it with SHOW
/// before sqlchat is loaded in its session, and a key that leaks that way must not keep working.
pub fn api_key() -> Result<Option<String>, sqlchat_core::Error> {
    if let Some(k) = string(&API_KEY) {
        return setting_secret("sqlchat.api_key", k).map(Some);
    }
    if let Some(k) = std::env::var("SQLCHAT_API_KEY").ok().filter(|k| !k.trim().is_empty()) {
        return Ok(Some(k.trim().to_string()));
    }
    let Some(path) = string(&API_KEY_FILE) else { return Ok(None) };
    let text = std::fs::read_to_string(&path).map_err(|e| sqlchat_core::Error::InvalidArgument {
        what: format!("could not read sqlchat.api_key_file: {e}"),
        hint: "Point sqlchat.api_key_file at a file the server's user can read, holding the key on its first line."
            .into(),
    })?;
    Ok(text.lines().next().map(|l| l.trim().to_string()).filter(|k| !k.is_empty()))
}

/// Where the key comes from, for check_setup (whether or not it may be used).
pub fn key_source() -> sqlchat_core::setup::KeySource {
    use sqlchat_core::setup::KeySource;
    if string(&AUTH_HEADER).is_some() {
        return KeySource::Setting("sqlchat.auth_header".into());
    }
    if string(&API_KEY).is_some() {
        return KeySource::Setting("sqlchat.api_key".into());
    }
    if std::env::var("SQLCHAT_API_KEY").is_ok_and(|k| !k.trim().is_empty()) {
        return KeySource::Environment;
    }
    match string(&API_KEY_FILE) {
        None => KeySource::None,
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) if text.lines().next().is_some_and(|l| !l.trim().is_empty()) => KeySource::File,
            Ok(_) => KeySource::FileUnreadable(format!("{path} holds no key on its first line")),
            Err(e) => KeySource::FileUnreadable(format!("{path}: {e}")),
        },
    }
}

/// `sqlchat.engine` as set (default, llm, offline or auto).
pub fn engine_setting() -> &'static str {
    match ENGINE.get() {
        EngineSetting::Default => "default",
        EngineSetting::Llm => "llm",
        EngineSetting::Offline => "offline",
        EngineSetting::Auto => "auto",
    }
}

/// sqlchat.auth_header, under the same rule as a key in sqlchat.api_key.
pub fn auth_header() -> Result<Option<String>, sqlchat_core::Error> {
    string(&AUTH_HEADER).map(|h| setting_secret("sqlchat.auth_header", h)).transpose()
}

fn setting_secret(name: &str, value: String) -> Result<String, sqlchat_core::Error> {
    if preloaded() {
        return Ok(value);
    }
    Err(sqlchat_core::Error::SecretExposed { setting: name.to_string() })
}

pub fn model() -> String {
    string(&MODEL).unwrap_or_else(|| "gpt-4o-mini".to_string())
}

pub fn fallback_models() -> Vec<String> {
    list(&FALLBACK_MODELS)
}

pub fn ca_file() -> Option<String> {
    string(&CA_FILE)
}

pub fn request_retries() -> u32 {
    REQUEST_RETRIES.get().max(0) as u32
}

pub fn allowed_functions() -> Vec<String> {
    list(&ALLOWED_FUNCTIONS)
}

pub fn request_timeout_ms() -> u64 {
    REQUEST_TIMEOUT_MS.get().max(1) as u64
}

pub fn query_timeout_ms() -> u64 {
    QUERY_TIMEOUT_MS.get().max(0) as u64
}

/// kB; 0: leave the caller's.
pub fn max_result_bytes() -> usize {
    MAX_RESULT_KB.get().max(1) as usize * 1024
}

pub fn work_mem_kb() -> i64 {
    WORK_MEM_KB.get().max(0) as i64
}

/// kB; 0: leave the server's.
pub fn temp_file_limit_kb() -> i64 {
    TEMP_FILE_LIMIT_KB.get().max(0) as i64
}

/// 0: no cost gate.
pub fn max_cost() -> f64 {
    MAX_COST.get().max(0.0)
}

pub fn max_rows() -> usize {
    MAX_ROWS.get().max(1) as usize
}

pub fn max_attempts() -> u32 {
    MAX_ATTEMPTS.get().max(1) as u32
}

pub fn max_history() -> usize {
    MAX_HISTORY.get().max(0) as usize
}

pub fn cache_ttl_s() -> i32 {
    CACHE_TTL.get()
}

pub fn schema_budget_tokens() -> usize {
    PROMPT_BUDGET.get().max(1) as usize
}

pub fn enable_cache() -> bool {
    ENABLE_CACHE.get()
}

pub fn generation_temperature() -> f64 {
    GENERATION_TEMPERATURE.get()
}

pub fn summary_temperature() -> f64 {
    SUMMARY_TEMPERATURE.get()
}

pub fn suggestion_temperature() -> f64 {
    SUGGESTION_TEMPERATURE.get()
}

pub fn engine() -> sqlchat_core::pipeline::Engine {
    use sqlchat_core::pipeline::Engine;
    match ENGINE.get() {
        EngineSetting::Llm => Engine::Llm,
        EngineSetting::Offline => Engine::Offline,
        EngineSetting::Auto => Engine::Auto,
        EngineSetting::Default if api_base().is_some() => Engine::Llm,
        EngineSetting::Default => Engine::Offline,
    }
}

pub fn send_rows() -> bool {
    SEND_ROWS.get() == SendRows::Sample
}

pub fn rls_bypass_setting() -> &'static str {
    match RLS_BYPASS.get() {
        RlsBypass::Warn => "warn",
        RlsBypass::Refuse => "refuse",
        RlsBypass::Allow => "allow",
    }
}

pub fn rls_bypass() -> RlsBypass {
    RLS_BYPASS.get()
}

/// Every secret a message shown to users must not contain (whether or not it may be used).
pub fn secrets() -> Vec<String> {
    let env = std::env::var("SQLCHAT_API_KEY").ok();
    let file = string(&API_KEY_FILE)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.lines().next().map(str::to_string));
    [string(&API_KEY), string(&AUTH_HEADER), env, file].into_iter().flatten().filter(|s| !s.trim().is_empty()).collect()
}

/// Runs `work` with `search_path` set to `path` and restores it afterwards, as
/// fmgr_security_definer does: sqlchat's own queries then resolve functions and operators in
/// pg_catalog only, whatever objects the caller put on its search_path. On ERROR the transaction's
/// abort restores it.
pub fn with_search_path<R>(path: &std::ffi::CStr, work: impl FnOnce() -> R) -> R {
    unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            path.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        let r = work();
        pg_sys::AtEOXact_GUC(true, nest_level);
        r
    }
}

/// The search_path of sqlchat's own queries.
pub const SYSTEM_SEARCH_PATH: &std::ffi::CStr = c"pg_catalog, pg_temp";
