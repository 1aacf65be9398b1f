//! Table selection on the public defog databases: gold-table recall and schema size.
//! The catalogs (as the extension dumps them) live in tests/data; the questions come from the
//! evaluation data, found at $SQLCHAT_EVAL_DIR or beside the repository, and the test is skipped
//! when they are absent.

use std::path::PathBuf;

use serde::Deserialize;
use sqlchat_core::lang::SchemaIndex;
use sqlchat_core::{estimate_tokens, rank, Catalog};

#[derive(Deserialize)]
struct Question {
    question: String,
    #[serde(default)]
    instructions: String,
    db_name: String,
    gold_tables: Vec<String>,
}

fn eval_dir() -> PathBuf {
    std::env::var_os("SQLCHAT_EVAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/eval")))
}

fn catalog(db: &str) -> Catalog {
    let path = format!("{}/tests/data/{db}.catalog.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("catalog fixture")).expect("catalog JSON")
}

#[test]
fn defog_gold_tables_are_selected_in_small_prompts() {
    let path = eval_dir().join("defog/questions.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: no evaluation data at {}", path.display());
        return;
    };
    let questions: Vec<Question> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!questions.is_empty());
    let (mut gold_total, mut gold_found) = (0, 0);
    let mut tokens = Vec::new();
    for db in ["academic", "restaurants", "geography", "broker"] {
        let catalog = catalog(db);
        let index = SchemaIndex::build(&catalog);
        let view = index.view(&catalog);
        for q in questions.iter().filter(|q| q.db_name == db) {
            let text = format!("{}\n{}", q.question, q.instructions);
            let selected = rank::select_tables(&view, &text, 1500);
            tokens.push(estimate_tokens(&rank::render_schema(&catalog, &selected)));
            for gold in &q.gold_tables {
                let (schema, name) = gold.split_once('.').expect("schema-qualified gold table");
                gold_total += 1;
                gold_found += usize::from(catalog.index_of(schema, name).is_some_and(|i| selected.contains(&i)));
            }
        }
    }
    tokens.sort_unstable();
    let recall = gold_found as f64 / gold_total as f64;
    let median = tokens[tokens.len() / 2];
    println!("recall {:.1}% over {gold_total} gold tables; median schema tokens {median}", 100.0 * recall);
    assert!(recall >= 0.98, "recall {recall}");
    assert!(median <= 350, "median schema tokens {median}");
}
