//! Extraction over the public defog and BIRD questions: each gold statement in every envelope the
//! fake gateway and the eval tooling produce (and markdown-escaped, and inside a WITH), prose and
//! empty-JSON replies written instead of SQL, several statements, and refusals. Prints the counts;
//! none may be lost or misread. Skips, saying so, without the eval data.
//!
//!     cargo test -p sqlchat-core --test reply_figures -- --nocapture

use serde_json::{json, Value};
use sqlchat_core::extract::{extract_sql, Extracted};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn eval_dir() -> PathBuf {
    std::env::var_os("SQLCHAT_EVAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/eval")))
}

fn read_jsonl(path: &PathBuf) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("JSON lines")).collect())
}

struct Question {
    text: String,
    /// The first gold statement; None for a question the schema cannot answer.
    gold: Option<String>,
}

fn questions() -> Option<Vec<Question>> {
    let dir = eval_dir();
    let defog = read_jsonl(&dir.join("defog/questions.jsonl"))?;
    let bird = read_jsonl(&dir.join("bird/questions.jsonl"))?;
    let mut out: Vec<Question> = defog
        .iter()
        .map(|q| Question {
            text: q["question"].as_str().unwrap_or_default().to_string(),
            gold: match q["expect_refusal"].as_bool().unwrap_or(false) {
                true => None,
                false => q["gold_sql_alternatives"][0].as_str().map(str::to_string),
            },
        })
        .collect();
    out.extend(bird.iter().map(|q| Question {
        text: q["question"].as_str().unwrap_or_default().to_string(),
        gold: q["gold_sql"].as_str().map(str::to_string),
    }));
    Some(out)
}

/// `\_` for `_` outside quotes, as models do when they format SQL as markdown text.
fn escape_underscores(sql: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '_') => out.push('\\'),
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Every envelope the fake gateway (tests/e2e/test_defog.py, tools/eval.py, the recorded-output
/// test) wraps a statement in, and a few more that models write.
fn envelopes(sql: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bare", sql.to_string()),
        ("semicolon", format!("{sql};")),
        ("sql fence", format!("```sql\n{sql}\n```")),
        ("fence, prose around", format!("Here is the SQL query that answers the question:\n\n```sql\n{sql};\n```\n\nIt reads only the tables needed and returns the requested values.")),
        ("SQL: then a fence", format!("SQL:\n```\n{sql}\n```")),
        ("postgresql fence", format!("```postgresql\n{sql}\n```\nThis query should give you the result you are looking for.")),
        ("label", format!("SQL: {sql};")),
        ("bold label", format!("**SQL Query:** {sql}")),
        ("tags", format!("<sql>\n{sql}\n</sql>")),
        ("reasoning first", format!("<think>Which tables? Maybe SELECT 1.</think>\n{sql}")),
        ("JSON", json!({ "sql": sql }).to_string()),
        ("fenced JSON", format!("```json\n{}\n```", json!({ "query": sql, "explanation": "reads the tables" }))),
        ("prose around", format!("To answer this, I join the tables.\n\n{sql};\n\nNote: dates are stored as text.")),
        ("comments", format!("-- the answer\n{sql}; -- done")),
    ]
}

fn normalized(sql: &str) -> String {
    sql.trim().trim_end_matches(';').split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text a model writes instead of SQL: never a refusal.
fn prose(question: &str) -> Vec<(&'static str, String)> {
    vec![
        ("prose", format!("Sure! To answer \"{question}\", count the matching rows of the relevant table.")),
        ("made-up answer", format!("The answer to \"{question}\" is 42.")),
        ("question echoed", format!("You asked: {question}\nI would look at the relevant table and count the rows.")),
        (
            "empty JSON query",
            json!({ "sql": "", "explanation": format!("For \"{question}\" the result is 42.") }).to_string(),
        ),
        ("null JSON query", json!({ "query": null, "answer": "42" }).to_string()),
    ]
}

const REFUSALS: &[&str] = &[
    "I'm sorry, but I can't answer this question: the database schema has no table or column holding that information.",
    "This question cannot be answered from the given schema, because none of the tables store data about it.",
    "Sorry, the provided tables do not contain the information needed to answer this question, so I can't write a SQL query for it.",
    "CANNOT_ANSWER: the schema has no table or column holding this information.",
    r#"{"sql": null, "reason": "The schema has no table that holds this."}"#,
];

#[derive(Default)]
struct Tally(BTreeMap<&'static str, usize>);

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }
    fn get(&self, what: &str) -> usize {
        self.0.get(what).copied().unwrap_or(0)
    }
}

#[test]
fn no_answer_is_misread_and_no_sql_is_lost() {
    let Some(questions) = questions() else {
        println!("skipped: the eval data is not in {} (set SQLCHAT_EVAL_DIR)", eval_dir().display());
        return;
    };
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let extract = |reply: &str| extract_sql(reply, &mut || {});
    for q in &questions {
        let Some(gold) = &q.gold else {
            for reply in REFUSALS {
                match extract(reply) {
                    Extracted::Refusal(_) => tally.add("refusals kept"),
                    other => {
                        tally.add("refusals missed");
                        problems.push(format!("refusal {reply:?} gave {other:?}"));
                    }
                }
            }
            continue;
        };
        let gold = gold.trim().trim_end_matches(';').trim().to_string();
        let forms = [
            ("", gold.clone()),
            (" + escapes", escape_underscores(&gold)),
            (" in a WITH", format!("WITH answer AS (\n{gold}\n)\nSELECT * FROM answer")),
        ];
        for (form, sql) in &forms {
            let expected = normalized(&sql.replace("\\_", "_"));
            for (name, reply) in envelopes(sql) {
                match extract(&reply) {
                    Extracted::Sql(got) if normalized(&got) == expected => tally.add("statements found"),
                    Extracted::Refusal(r) => {
                        tally.add("answers misreported as refusals");
                        problems.push(format!("{name}{form}: refusal {r:?} from {reply:?}"));
                    }
                    other => {
                        tally.add("statements lost");
                        problems.push(format!("{name}{form}: {other:?} from {reply:?}"));
                    }
                }
            }
        }
        for reply in [format!("{gold};\n{gold};"), format!("{gold}; DELETE FROM orders;")] {
            match extract(&reply) {
                Extracted::Several(_) => tally.add("several statements refused whole"),
                other => {
                    tally.add("several statements cut");
                    problems.push(format!("several: {other:?} from {reply:?}"));
                }
            }
        }
        for (name, reply) in prose(&q.text) {
            match extract(&reply) {
                Extracted::NoSql => tally.add("text instead of SQL, asked again"),
                other => {
                    tally.add("text instead of SQL misread");
                    problems.push(format!("{name}: {other:?} from {reply:?}"));
                }
            }
        }
    }
    for (what, n) in &tally.0 {
        println!("{what:>36}: {n}");
    }
    for p in problems.iter().take(20) {
        println!("{p}");
    }
    assert!(tally.get("statements found") > 0);
    assert_eq!(problems.len(), 0, "{} replies misread (first ones above)", problems.len());
}
