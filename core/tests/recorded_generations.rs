//! SQL extraction over real model outputs (the BIRD recorded generations of the public eval data):
//! every reply must yield a statement, several statements (refused whole, then repaired) or a
//! refusal, never nothing; a statement must be bare SQL.

use sqlchat_core::extract::{extract_sql, Extracted};
use std::path::PathBuf;

fn eval_dir() -> PathBuf {
    std::env::var_os("SQLCHAT_EVAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/eval")))
}

/// Problems that show the statement still carries its envelope.
fn envelope_left(sql: &str) -> Option<&'static str> {
    let first_word = sql.split(|c: char| !c.is_alphanumeric()).find(|w| !w.is_empty()).unwrap_or("");
    if !["select", "with", "values", "table"].contains(&first_word.to_ascii_lowercase().as_str()) {
        return Some("does not start with a query keyword");
    }
    if sql.contains("```") || sql.contains("~~~") {
        return Some("code fence");
    }
    if sql.trim_end().ends_with(';') {
        return Some("trailing semicolon");
    }
    if sql.contains("\\_") || sql.contains("\\*") {
        return Some("markdown escape");
    }
    let prose = ["This ", "The ", "Note", "Explanation", "Here ", "I ", "In this "];
    if sql.lines().any(|line| prose.iter().any(|p| line.trim_start().starts_with(p))) {
        return Some("a line of prose");
    }
    None
}

#[test]
fn every_recorded_output_yields_bare_sql_several_or_a_refusal() {
    let path = eval_dir().join("bird/recorded_generations.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} is not available", path.display());
        return;
    };
    let mut statements = 0;
    let mut several = 0;
    let mut refusals = 0;
    let mut problems = Vec::new();
    for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let record: serde_json::Value =
            serde_json::from_str(line).expect("recorded_generations.jsonl holds JSON lines");
        let output = record["recorded_output"].as_str().expect("every record has recorded_output");
        match extract_sql(output, &mut || {}) {
            Extracted::Sql(sql) => {
                statements += 1;
                if let Some(problem) = envelope_left(&sql) {
                    problems.push(format!("line {}: {problem}: {sql:?}", n + 1));
                }
            }
            Extracted::Several(_) => several += 1,
            Extracted::Refusal(_) => refusals += 1,
            other => problems.push(format!("line {}: {other:?} from {output:?}", n + 1)),
        }
    }
    println!("{statements} statements, {several} with several statements, {refusals} refusals");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let read = statements + several + refusals;
    assert!(read >= 260, "expected the 260 recorded outputs, read {read}");
}

/// The envelopes models put around a statement, each of which must give the statement back.
fn envelopes(sql: &str) -> Vec<String> {
    vec![
        format!("```sql\n{sql};\n```"),
        format!("Here is the query:\n\n```\n{sql}\n```\n\nThis query answers the question."),
        format!("SQL: {sql};"),
        format!("<sql>\n{sql}\n</sql>"),
        serde_json::json!({ "sql": sql }).to_string(),
        format!("To answer this, I join the tables.\n\n{sql};\n\nNote: dates are stored as text."),
    ]
}

#[test]
fn recorded_statements_survive_every_envelope() {
    let path = eval_dir().join("bird/recorded_generations.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} is not available", path.display());
        return;
    };
    let mut problems = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let record: serde_json::Value =
            serde_json::from_str(line).expect("recorded_generations.jsonl holds JSON lines");
        let Extracted::Sql(sql) = extract_sql(record["recorded_output"].as_str().unwrap_or_default(), &mut || {})
        else {
            continue;
        };
        for reply in envelopes(&sql) {
            let got = extract_sql(&reply, &mut || {});
            if got != Extracted::Sql(sql.clone()) {
                problems.push(format!("{reply:?} gave {got:?}"));
            }
        }
        // Two statements are refused as a whole, never cut to the first.
        let twice = extract_sql(&format!("{sql};\n{sql};"), &mut || {});
        if twice != Extracted::Several(format!("{sql};\n{sql}")) {
            problems.push(format!("the statement twice gave {twice:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of the enveloped statements came back changed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
