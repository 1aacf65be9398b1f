//! Replies built to make reply handling slow: every pass over model output must take time linear
//! in the reply (time per MB must not grow with the size), and must let the host's interrupt check
//! end it. Prints the figures; the bounds are generous (shared, noisy machine; debug build).
//!
//!     cargo test -p sqlchat-core --test pathological_replies -- --nocapture

use sqlchat_core::extract::extract_sql;
use sqlchat_core::openai::parse_reply;
use sqlchat_core::prompt::parse_answer_reply;
use std::time::{Duration, Instant};

/// Text repeated to the reply's size, after an optional start.
struct Pattern {
    name: &'static str,
    start: &'static str,
    unit: &'static str,
}

const PATTERNS: &[Pattern] = &[
    Pattern { name: "think tags", start: "", unit: "<think></think>" },
    Pattern { name: "unclosed think", start: "<think>", unit: "SELECT 1 " },
    Pattern { name: "closing tags only", start: "", unit: "</think>" },
    Pattern { name: "sql tags", start: "", unit: "<sql>" },
    Pattern { name: "angle brackets", start: "", unit: "<" },
    Pattern { name: "empty fences", start: "", unit: "```\n" },
    Pattern { name: "sql fences", start: "", unit: "```sql\nSELECT 1\n```\n" },
    Pattern { name: "deep braces", start: "", unit: "{" },
    Pattern { name: "deep brackets", start: "{\"sql\": ", unit: "[" },
    Pattern { name: "long line", start: "SELECT ", unit: "a" },
    Pattern { name: "markdown escapes", start: "SELECT a", unit: "\\_" },
    Pattern { name: "open CTE lists", start: "", unit: "WITH t (\n" },
    Pattern { name: "open parentheses", start: "", unit: "(\n" },
    Pattern { name: "quotes", start: "SELECT ", unit: "'" },
    Pattern { name: "dollar quotes", start: "SELECT ", unit: "$a$" },
    Pattern { name: "nested comments", start: "SELECT ", unit: "/*" },
    Pattern { name: "statements", start: "", unit: "SELECT 1;\n" },
    Pattern { name: "backticks", start: "The query is ", unit: "`" },
    Pattern { name: "prose", start: "", unit: "Sure! The orders table has no weather. " },
    Pattern { name: "line breaks", start: "", unit: "\n" },
    Pattern { name: "huge JSON string", start: "{\"sql\": \"SELECT ", unit: "x" },
    Pattern { name: "huge JSON list", start: "{\"answer\": \"a\", \"followups\": [", unit: "\"q?\", " },
];

fn reply(pattern: &Pattern, mb: usize) -> String {
    let units = ((mb << 20) - pattern.start.len()).div_ceil(pattern.unit.len());
    format!("{}{}", pattern.start, pattern.unit.repeat(units))
}

/// Seconds of the fastest of `runs` runs of `f` (the machine is shared: the minimum is the figure
/// least disturbed by others).
fn fastest(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// What the pipeline does with a reply: SQL extraction, and answer parsing.
fn handle(reply: &str) {
    std::hint::black_box(extract_sql(reply, &mut || {}));
    std::hint::black_box(parse_answer_reply(reply, &mut || {}));
}

/// Milliseconds per MB may not grow more than this factor from 1 MB to a larger reply (a quadratic
/// pass grows 8x at 8 MB and 50x at 50 MB)...
const MAX_GROWTH: f64 = 3.0;
/// ...beyond this noise allowance (ms per MB).
const NOISE_MS_PER_MB: f64 = 2.0;

fn assert_linear(name: &str, what: &str, per_mb_1: f64, per_mb: f64, mb: usize) {
    assert!(
        per_mb <= MAX_GROWTH * per_mb_1 + NOISE_MS_PER_MB,
        "{name}, {what}: {per_mb:.2} ms/MB at {mb} MB against {per_mb_1:.2} ms/MB at 1 MB"
    );
}

#[test]
fn reply_handling_is_linear_from_1_to_8_mb() {
    println!("{:<20} {:>12} {:>12}", "reply", "1 MB ms/MB", "8 MB ms/MB");
    for pattern in PATTERNS {
        let (small, large) = (reply(pattern, 1), reply(pattern, 8));
        let per_mb_1 = fastest(3, || handle(&small)) * 1000.0;
        let per_mb_8 = fastest(2, || handle(&large)) * 1000.0 / 8.0;
        println!("{:<20} {per_mb_1:>12.2} {per_mb_8:>12.2}", pattern.name);
        assert_linear(pattern.name, "reply handling", per_mb_1, per_mb_8, 8);
    }
}

/// The figures at 50 MB, and the parsing of the gateway's body around the reply (done by the
/// extension's client on its helper thread); slow in a debug build, so run on demand:
///
///     cargo test -p sqlchat-core --test pathological_replies -- --include-ignored --nocapture
#[test]
#[ignore]
fn reply_handling_is_linear_at_50_mb_and_bodies_parse_linearly() {
    println!(
        "{:<20} {:>12} {:>12} {:>16} {:>16}",
        "reply", "1 MB ms/MB", "50 MB ms/MB", "body 1 MB ms/MB", "body 8 MB ms/MB"
    );
    for pattern in PATTERNS {
        let small = reply(pattern, 1);
        let per_mb_1 = fastest(3, || handle(&small)) * 1000.0;
        let large = reply(pattern, 50);
        let per_mb_50 = fastest(1, || handle(&large)) * 1000.0 / 50.0;
        drop(large);
        let body = |text: &str| {
            let content = serde_json::json!({ "choices": [{ "message": { "role": "assistant", "content": text } }] });
            serde_json::to_vec(&content).unwrap()
        };
        let (body_1, body_8) = (body(&small), body(&reply(pattern, 8)));
        let parse_1 = fastest(3, || drop(std::hint::black_box(parse_reply(&body_1)))) * 1000.0;
        let parse_8 = fastest(1, || drop(std::hint::black_box(parse_reply(&body_8)))) * 1000.0 / 8.0;
        println!("{:<20} {per_mb_1:>12.2} {per_mb_50:>12.2} {parse_1:>16.2} {parse_8:>16.2}", pattern.name);
        assert_linear(pattern.name, "reply handling", per_mb_1, per_mb_50, 50);
        assert_linear(pattern.name, "body parsing", parse_1, parse_8, 8);
    }
}

#[test]
fn an_interrupt_check_that_unwinds_ends_the_pass_at_once() {
    for pattern in PATTERNS {
        let text = reply(pattern, 8);
        let started = Instant::now();
        let mut checks = 0;
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            extract_sql(&text, &mut || {
                checks += 1;
                // The extension's check raises the cancel's ERROR, which unwinds like this.
                std::panic::resume_unwind(Box::new("canceling statement due to user request"));
            })
        }));
        assert!(ended.is_err(), "{}: the pass never checked for interrupts", pattern.name);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(200), "{}: unwound after {took:?}", pattern.name);
        assert_eq!(checks, 1);
    }
}
