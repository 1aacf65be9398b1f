use super::hint::{self, CancelCause, QUERY_HINTS};
use super::*;

const KEY: &str = "sk-test-4f9c2a71b8d34e0a9c5f";

fn tried(statements: u32, limit: u32, model_calls: u32) -> Tried {
    Tried { statements, limit, model_calls }
}

fn failed(sqlstate: &str, tried: Tried) -> Error {
    Error::QueryFailed { sqlstate: sqlstate.into(), message: "m".into(), sql: "SELECT 1".into(), tried }
}

fn refused(kind: Refusal) -> Error {
    Error::QueryRefused {
        sqlstate: "42501".into(),
        kind,
        reason: "r".into(),
        sql: "SELECT 1".into(),
        tried: tried(3, 3, 3),
    }
}

fn every_variant() -> Vec<Error> {
    vec![
        Error::NullQuestion,
        Error::EmptyQuestion,
        Error::InvalidArgument { what: "w".into(), hint: "h".into() },
        Error::NotConfigured,
        Error::SecretExposed { setting: "sqlchat.api_key".into() },
        Error::GatewayUnreachable { detail: "x".into() },
        Error::GatewayConnectionLost { detail: "x".into() },
        Error::GatewayTls { detail: "x".into() },
        Error::GatewayTimeout { timeout_ms: 1 },
        Error::GatewayAuth { status: 401, body: "".into() },
        Error::GatewayRateLimited { body: "".into() },
        Error::GatewayStatus { status: 500, body: "".into() },
        Error::GatewayStatus { status: 400, body: "".into() },
        Error::GatewayStatus { status: 404, body: "".into() },
        Error::GatewayStatus { status: 503, body: "".into() },
        Error::GatewayRedirect { status: 302, location: "".into() },
        Error::GatewayReplyTooLarge { limit: 1 },
        Error::GatewayBadReply { detail: "x".into() },
        Error::NoSql { reply: "".into(), model_calls: 1 },
        failed("42703", tried(3, 3, 3)),
        refused(Refusal::Function),
        Error::Cancelled { message: "canceling statement due to user request".into() },
        Error::NoVisibleTables,
        Error::Privileged { what: "w".into(), role: "r".into(), hint: "h".into() },
        Error::Internal { detail: "x".into() },
        Error::QuotaExceeded { role: "r".into(), limit: "5 asks per hour".into(), resets_at: "t".into() },
        Error::NotPreloaded { what: "sqlchat.stats".into() },
        Error::Reentered { function: "sqlchat.ask".into() },
        Error::JobReadOnly { what: "queue a job", place: "in a read-only transaction" },
        Error::JobNotFound { job: 1 },
        Error::JobCancelled { job: 1 },
        Error::JobTimedOut { job: 1, limit_s: 600 },
        Error::JobInterrupted { job: 1 },
        Error::JobRoleGone { job: 1, role: "r".into() },
        Error::JobLoginRefused { job: 1, role: "r".into() },
        Error::JobConnectRefused { job: 1, role: "r".into(), database: "d".into() },
        Error::JobSetRoleRefused { job: 1, login: "l".into(), role: "r".into() },
        Error::JobQueueFull { role: "r".into(), limit: 100 },
        Error::TeachReadOnly { what: "teach".into(), place: "on a hot standby" },
        Error::TeachNotFound { what: "example", id: 1, own: false },
        Error::TeachNotFound { what: "definition", id: 1, own: false },
        Error::TeachNotFound { what: "turn", id: 1, own: true },
        Error::TaughtSql { sqlstate: "42703".into(), message: "column \"x\" does not exist".into(), refusal: None },
        Error::TeachingFull { what: "sqlchat.examples", limit: 2000 },
    ]
}

#[test]
fn every_error_has_a_sqlstate_a_prefixed_message_and_a_hint() {
    for e in every_variant() {
        let r = e.report(&Secrets::none());
        assert_eq!(r.sqlstate.len(), 5, "{e:?}");
        assert!(r.message.starts_with("sqlchat: "), "{e:?}");
        assert!(!r.hint.trim().is_empty(), "{e:?}");
    }
}

#[test]
fn messages_count_statements_tried_and_model_calls() {
    let e = failed("42703", tried(2, 3, 3));
    assert_eq!(e.to_string(), "the generated SQL failed after 2 attempts and 3 model calls: m");
    let e = failed("42703", tried(1, 3, 1));
    assert_eq!(e.to_string(), "the generated SQL failed after 1 attempt and 1 model call: m");
    let mut e = refused(Refusal::Cost);
    if let Error::QueryRefused { tried: t, .. } = &mut e {
        *t = tried(1, 3, 0);
    }
    assert_eq!(e.to_string(), "the generated SQL was refused after 1 attempt and 0 model calls: r");
    assert_eq!(
        Error::NoSql { reply: "".into(), model_calls: 2 }.to_string(),
        "the model's reply held no SQL statement (2 model calls)"
    );
}

#[test]
fn the_detail_says_why_repairs_stopped() {
    let detail = |e: Error| e.report(&Secrets::none()).detail.unwrap();
    assert_eq!(
        detail(failed("42703", tried(3, 3, 3))),
        "Stopped: sqlchat.max_attempts (3) reached. Last statement tried: SELECT 1"
    );
    assert_eq!(
        detail(failed("42703", tried(1, 3, 2))),
        "Stopped: the model's repair gave no new statement. Last statement tried: SELECT 1"
    );
}

/// Every SQLSTATE and class with a hint of its own gets it, through the failed-query error.
#[test]
fn each_query_sqlstate_gets_its_own_hint() {
    let cases = [
        ("42501", "42501"),
        ("42P01", "42P01"),
        ("42703", "42703"),
        ("42883", "42883"),
        ("42601", "42601"),
        ("42804", "42"),
        ("42803", "42"),
        ("22012", "22012"),
        ("22P02", "22"),
        ("22003", "22"),
        ("22008", "22"),
        ("21000", "21000"),
        ("0A000", "0A000"),
        ("25006", "25006"),
        ("53400", "53400"),
        ("53200", "53200"),
        ("53100", "53100"),
        ("53300", "53"),
        ("54000", "54"),
        ("54001", "54"),
        ("55P03", "55P03"),
        ("40001", "40001"),
        ("40P01", "40P01"),
        ("40002", "40"),
        ("57P01", "57"),
        ("58P01", "58"),
        ("P0001", "P0"),
        ("XX000", "XX"),
        ("XX001", "XX"),
    ];
    for (sqlstate, entry) in cases {
        let want = QUERY_HINTS.iter().find(|h| h.sqlstate == entry).unwrap();
        let got = failed(sqlstate, tried(1, 1, 1)).hint();
        assert!(got.starts_with(want.hint), "{sqlstate}: {got}");
    }
    assert_eq!(hint::query_hint("99999"), &hint::OTHER_QUERY_ERROR);
    assert_eq!(hint::query_hint(""), &hint::OTHER_QUERY_ERROR);
    // Every entry is reached by its own SQLSTATE and no two say the same.
    for h in QUERY_HINTS {
        assert_eq!(hint::query_hint(h.sqlstate).hint, h.hint);
        assert_eq!(QUERY_HINTS.iter().filter(|o| o.hint == h.hint).count(), 1, "{}", h.sqlstate);
    }
}

#[test]
fn max_attempts_is_suggested_only_where_more_repairs_can_help() {
    for h in QUERY_HINTS.iter().chain([&hint::OTHER_QUERY_ERROR]) {
        let sqlstate = if h.sqlstate.len() == 2 { format!("{}ZZZ", h.sqlstate) } else { h.sqlstate.to_string() };
        let sqlstate = if sqlstate.is_empty() { "99999".to_string() } else { sqlstate };
        let at_limit = failed(&sqlstate, tried(3, 3, 3)).hint();
        assert_eq!(at_limit.contains("sqlchat.max_attempts"), h.repairable, "{sqlstate}: {at_limit}");
        // Stopped before the limit (the model repeated itself): more attempts would not help.
        let early = failed(&sqlstate, tried(1, 3, 2)).hint();
        assert!(!early.contains("sqlchat.max_attempts"), "{sqlstate}: {early}");
    }
    // The review's cases: privileges and the temporary-file limit.
    for sqlstate in ["42501", "53400", "54000", "57P01", "40001", "XX000"] {
        assert!(!failed(sqlstate, tried(3, 3, 3)).hint().contains("max_attempts"), "{sqlstate}");
    }
    assert!(failed("53400", tried(3, 3, 3)).hint().contains("sqlchat.temp_file_limit"));
    assert!(failed("42703", tried(3, 3, 3)).hint().contains("sqlchat.max_attempts (now 3)"));
}

/// `Refusal::ALL` holds every kind: a new kind does not compile here until it is chained in, and
/// then the walk finds it missing from `ALL`.
#[test]
fn all_holds_every_refusal_kind() {
    fn next(kind: Refusal) -> Option<Refusal> {
        match kind {
            Refusal::Statement => Some(Refusal::Function),
            Refusal::Function => Some(Refusal::Relation),
            Refusal::Relation => Some(Refusal::ForeignCode),
            Refusal::ForeignCode => Some(Refusal::RlsBypass),
            Refusal::RlsBypass => Some(Refusal::Cost),
            Refusal::Cost => Some(Refusal::Malformed),
            Refusal::Malformed => None,
        }
    }
    let walked: Vec<Refusal> = std::iter::successors(Some(Refusal::Statement), |&k| next(k)).collect();
    assert_eq!(walked, Refusal::ALL);
}

#[test]
fn each_refusal_kind_gets_its_own_hint() {
    let hints: Vec<String> = Refusal::ALL.iter().map(|&k| refused(k).hint()).collect();
    for (i, h) in hints.iter().enumerate() {
        assert_eq!(h, hint::for_refusal(Refusal::ALL[i]));
        assert_eq!(hints.iter().filter(|o| *o == h).count(), 1, "{h}");
    }
    let of = |k| refused(k).hint();
    assert!(of(Refusal::RlsBypass).contains("sqlchat.rls_bypass"));
    assert!(!of(Refusal::RlsBypass).contains("allowed_functions"));
    assert!(of(Refusal::Function).contains("sqlchat.allowed_functions"));
    assert!(of(Refusal::Cost).contains("sqlchat.max_cost"));
    assert!(of(Refusal::Statement).contains("SELECT"));
    for k in Refusal::ALL {
        assert!(!of(k).contains("max_attempts"), "{k:?}");
    }
}

#[test]
fn each_cancel_cause_gets_its_own_hint() {
    let hint_of = |message: &str| Error::Cancelled { message: message.into() }.hint();
    // The text src/exec gives a query that outran sqlchat's own deadline.
    let own = "the generated query ran longer than sqlchat.query_timeout_ms (200 ms)";
    assert_eq!(CancelCause::of(own), CancelCause::QueryTimeout);
    assert!(hint_of(own).contains("sqlchat.query_timeout_ms"));
    let statement = "canceling statement due to statement timeout";
    assert_eq!(CancelCause::of(statement), CancelCause::StatementTimeout);
    assert!(hint_of(statement).contains("statement_timeout"));
    assert_eq!(CancelCause::of("canceling statement due to user request"), CancelCause::Request);
    assert_ne!(hint_of(own), hint_of(statement));
}

#[test]
fn reports_scrub_before_cutting() {
    let secrets = Secrets::new(&[KEY]);
    // The key straddles the 300 characters shown: a cut first would keep its first half.
    let body = format!("{}{KEY} and more", "x".repeat(290));
    let r = Error::GatewayAuth { status: 401, body }.report(&secrets);
    let detail = r.detail.unwrap();
    assert!(!detail.contains(&KEY[..8]), "{detail}");
    assert!(detail.contains("[redacted]"), "{detail}");
    // Message, detail and hint are all scrubbed.
    let e = Error::InvalidArgument { what: format!("bad {KEY}"), hint: format!("use {KEY}") };
    let r = e.report(&secrets);
    assert!(!r.message.contains(KEY) && !r.hint.contains(KEY), "{r:?}");
    let e = failed("42703", tried(1, 1, 1));
    let Error::QueryFailed { sqlstate, tried, .. } = e else { unreachable!() };
    let e = Error::QueryFailed { sqlstate, message: KEY.to_uppercase(), sql: format!("SELECT '{KEY}'"), tried };
    let r = e.report(&secrets);
    assert!(!r.message.to_lowercase().contains(&KEY[3..15]), "{r:?}");
    assert!(!r.detail.unwrap().contains(&KEY[3..15]));
}

#[test]
fn long_texts_are_cut_after_scrubbing() {
    let r = Error::NoSql { reply: "y".repeat(10_000), model_calls: 1 }.report(&Secrets::none());
    let detail = r.detail.unwrap();
    assert_eq!(detail.chars().count(), "the model replied: ".len() + 300 + 3);
    assert_eq!(excerpt("héllo", 2), "hé...");
    assert_eq!(excerpt("hé", 2), "hé");
    assert_eq!(keep(&"z".repeat(MAX_KEPT_CHARS + 10)).len(), MAX_KEPT_CHARS);
}

/// docs/errors.md lists every hint word for word, under its SQLSTATE, refusal kind or cancel cause.
#[test]
fn docs_list_every_hint() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md");
    let docs = std::fs::read_to_string(path).expect("docs/errors.md");
    // A table row whose first cell is `first`, that holds `also`, and whose last cell is `hint`.
    let row = |first: &str, also: &str, hint: &str| {
        let found = docs
            .lines()
            .any(|l| l.starts_with(&format!("| {first} |")) && l.contains(also) && l.ends_with(&format!("| {hint} |")));
        assert!(found, "docs/errors.md lacks a row | {first} | ... {also} ... | {hint} |");
    };
    for h in QUERY_HINTS {
        let code = if h.sqlstate.len() == 2 { format!("{}xxx", h.sqlstate) } else { h.sqlstate.to_string() };
        row(&code, h.condition, h.hint);
    }
    row("(any other)", "", hint::OTHER_QUERY_ERROR.hint);
    let more = hint::more_attempts(3).trim().replace("now 3", "now N");
    assert!(docs.contains(&more), "docs/errors.md lacks: {more}");
    for k in Refusal::ALL {
        row(k.name(), "", hint::for_refusal(k));
    }
    for (cause, name) in [
        (CancelCause::QueryTimeout, "sqlchat.query_timeout_ms"),
        (CancelCause::StatementTimeout, "statement_timeout"),
        (CancelCause::Request, "Ctrl-C, pg_cancel_backend"),
    ] {
        row(name, "", cause.hint());
    }
    for e in every_variant() {
        let own_hint = matches!(
            e,
            Error::QueryFailed { .. }
                | Error::QueryRefused { .. }
                | Error::Cancelled { .. }
                | Error::InvalidArgument { .. }
                | Error::Privileged { .. }
                | Error::QuotaExceeded { .. }
        );
        if !own_hint {
            assert!(docs.contains(&e.hint()), "docs/errors.md lacks the hint of {e:?}: {}", e.hint());
        }
    }
}
