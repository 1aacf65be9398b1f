//! Measures table selection against questions with known gold tables.
//!
//! ```text
//! cargo run -p sqlchat-core --example rank_eval -- <catalog.json> <questions.jsonl> [budget]
//!     [--db NAME] [--distractors <catalog.json>] [--question-only] [--verbose]
//! ```
//! Questions are JSON lines with `question`, optional `instructions` or `evidence` (appended to the
//! question, as a caller would), `gold_tables` (`schema.table`, or a bare table name) and optional
//! `db_name` / `bird_db_id` / `expect_refusal`. `--db` keeps the questions of one database; without
//! it, those whose gold tables are all in the catalog. `--distractors` appends another catalog's
//! tables, to measure recall when many real-named tables compete.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sqlchat_core::catalog::Catalog;
use sqlchat_core::lang::SchemaIndex;
use sqlchat_core::{estimate_tokens, prompt, rank};

#[derive(Deserialize)]
struct Question {
    question: String,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    evidence: Option<String>,
    #[serde(default)]
    gold_tables: Vec<String>,
    #[serde(default)]
    db_name: Option<String>,
    #[serde(default)]
    bird_db_id: Option<String>,
    #[serde(default)]
    expect_refusal: bool,
}

struct Args {
    catalog: String,
    questions: String,
    budget: usize,
    db: Option<String>,
    distractors: Option<String>,
    question_only: bool,
    verbose: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut db = None;
    let mut distractors = None;
    let mut question_only = false;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db = Some(args.next().ok_or("--db needs a name")?),
            "--distractors" => distractors = Some(args.next().ok_or("--distractors needs a file")?),
            "--question-only" => question_only = true,
            "--verbose" => verbose = true,
            _ => positional.push(arg),
        }
    }
    let [catalog, questions, rest @ ..] = positional.as_slice() else {
        return Err("usage: rank_eval <catalog.json> <questions.jsonl> [budget] [--db NAME] \
                    [--distractors <catalog.json>] [--question-only] [--verbose]"
            .into());
    };
    let budget = match rest.first() {
        Some(b) => b.parse().map_err(|_| format!("budget is not a number: {b}"))?,
        None => 1500,
    };
    Ok(Args { catalog: catalog.clone(), questions: questions.clone(), budget, db, distractors, question_only, verbose })
}

fn load_catalog(path: &str) -> Result<Catalog, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

fn load_questions(path: &str) -> Result<Vec<Question>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("{path} line {}: {e}", n + 1)))
        .collect()
}

/// The catalog index of a gold table: `schema.table`, or a bare name (first match).
fn resolve(catalog: &Catalog, gold: &str) -> Option<usize> {
    match gold.split_once('.') {
        Some((schema, name)) => catalog.index_of(schema, name),
        None => catalog.tables.iter().position(|t| t.name == gold),
    }
}

fn percentile(sorted: &[usize], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn run(args: Args) -> Result<(), String> {
    let mut catalog = load_catalog(&args.catalog)?;
    let own_tables = catalog.tables.len();
    if let Some(path) = &args.distractors {
        catalog.tables.extend(load_catalog(path)?.tables);
    }
    let index = SchemaIndex::build(&catalog);
    let view = index.view(&catalog);
    let questions: Vec<Question> = load_questions(&args.questions)?
        .into_iter()
        .filter(|q| match &args.db {
            Some(db) => q.db_name.as_deref() == Some(db) || q.bird_db_id.as_deref() == Some(db),
            None => !q.gold_tables.is_empty() && q.gold_tables.iter().all(|g| resolve(&catalog, g).is_some()),
        })
        .collect();

    let (mut recall_sum, mut precision_sum, mut full, mut scored, mut unresolved) = (0.0, 0.0, 0, 0, 0);
    let mut schema_tokens = Vec::new();
    let mut prompt_tokens = Vec::new();
    let mut slowest = Duration::ZERO;
    for q in &questions {
        let hint = q.instructions.as_deref().or(q.evidence.as_deref()).filter(|h| !h.trim().is_empty());
        let text = match hint {
            Some(h) if !args.question_only => format!("{}\n{h}", q.question),
            _ => q.question.clone(),
        };
        let started = Instant::now();
        let selected = rank::select_tables(&view, &text, args.budget);
        slowest = slowest.max(started.elapsed());
        let schema = rank::render_schema(&catalog, &selected);
        schema_tokens.push(estimate_tokens(&schema));
        let messages = prompt::generate_sql_messages(&text, &schema, &prompt::Taught::default(), &[], None);
        prompt_tokens.push(messages.iter().map(|m| estimate_tokens(&m.content)).sum());

        let gold: Vec<usize> = q.gold_tables.iter().filter_map(|g| resolve(&catalog, g)).collect();
        unresolved += q.gold_tables.len() - gold.len();
        if gold.is_empty() {
            continue;
        }
        let hits = gold.iter().filter(|g| selected.contains(g)).count();
        let recall = hits as f64 / gold.len() as f64;
        recall_sum += recall;
        precision_sum += hits as f64 / selected.len().max(1) as f64;
        scored += 1;
        if hits == gold.len() {
            full += 1;
        } else if args.verbose {
            let names =
                |ix: &[usize]| ix.iter().map(|&i| catalog.tables[i].display_name()).collect::<Vec<_>>().join(", ");
            println!("MISS {}\n  gold: {}\n  got:  {}", q.question, names(&gold), names(&selected));
        }
    }
    schema_tokens.sort_unstable();
    prompt_tokens.sort_unstable();
    let share = |x: f64| if scored == 0 { 0.0 } else { 100.0 * x / scored as f64 };
    println!(
        "tables {own_tables} (+{} distractors), questions {} ({} with gold tables, {} refusals), budget {}",
        catalog.tables.len() - own_tables,
        questions.len(),
        scored,
        questions.iter().filter(|q| q.expect_refusal).count(),
        args.budget
    );
    println!(
        "recall {:.1}%  full-recall questions {:.1}%  precision {:.1}%  unresolved gold tables {unresolved}",
        share(recall_sum),
        share(full as f64),
        share(precision_sum)
    );
    println!(
        "schema tokens median {} p90 {} max {}  prompt tokens median {} p90 {}  slowest selection {:.2} ms",
        percentile(&schema_tokens, 0.5),
        percentile(&schema_tokens, 0.9),
        schema_tokens.last().copied().unwrap_or(0),
        percentile(&prompt_tokens, 0.5),
        percentile(&prompt_tokens, 0.9),
        slowest.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rank_eval: {e}");
            ExitCode::FAILURE
        }
    }
}
