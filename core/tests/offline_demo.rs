//! Every question of the demo (demo/questions.txt) is answered by the offline engine on the demo
//! shop's catalog (tests/data/shop.catalog.json, as the extension dumps it), with value lookups
//! answered from the values the demo data holds.

use serde_json::json;
use sqlchat_core::lang::View;
use sqlchat_core::offline::{self, Decision, Probe};
use sqlchat_core::{Catalog, ResultSet};

/// Values of the demo shop's short text columns, by column name.
const VALUES: &[(&str, &[&str])] = &[
    ("status", &["pending", "paid", "shipped", "delivered", "cancelled"]),
    ("channel", &["web", "mobile_app", "marketplace", "phone"]),
    ("method", &["card", "paypal", "bank_transfer"]),
    ("segment", &["consumer", "business"]),
    ("country", &["Germany", "United Kingdom", "France", "Spain", "Netherlands"]),
    ("city", &["Berlin", "London", "Paris", "Madrid", "Amsterdam"]),
];

/// Answers the planner's one lookup query: `(SELECT DISTINCT <i> AS c, <column>::text AS v ...
/// = ANY(ARRAY['a', 'b']) ...) UNION ALL ...`.
struct ShopValues;

impl Probe for ShopValues {
    fn query(&mut self, sql: &str) -> Result<ResultSet, String> {
        let mut rows = Vec::new();
        for part in sql.split(" UNION ALL ") {
            let index = part.trim_start_matches("(SELECT DISTINCT ").split(' ').next().unwrap_or("");
            let column = part.split(" AS c, ").nth(1).and_then(|s| s.split("::text").next()).unwrap_or("");
            let asked = part.split("ARRAY[").nth(1).and_then(|s| s.split(']').next()).unwrap_or("");
            let known = VALUES.iter().find(|(c, _)| *c == column.trim_matches('"')).map(|(_, v)| *v).unwrap_or(&[]);
            for value in known {
                if asked.contains(&format!("'{}'", value.to_lowercase().replace('_', " "))) {
                    rows.push(vec![json!(index.parse::<u64>().unwrap_or(0)), json!(value)]);
                }
            }
        }
        Ok(ResultSet { rows, ..ResultSet::default() })
    }
}

#[test]
fn the_demo_questions_are_answered_offline() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let catalog: Catalog =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/core/tests/data/shop.catalog.json")).unwrap())
            .unwrap();
    let questions = std::fs::read_to_string(format!("{root}/demo/questions.txt")).unwrap();
    let view = View::new(&catalog, None);
    let declined: Vec<String> = questions
        .lines()
        .filter(|q| !q.trim().is_empty())
        .filter_map(|q| match offline::plan(&view, q, &mut ShopValues) {
            Decision::Answer(_) => None,
            Decision::Decline(why) => Some(format!("{q}: {why}")),
        })
        .collect();
    assert!(declined.is_empty(), "declined:\n{}", declined.join("\n"));
}
