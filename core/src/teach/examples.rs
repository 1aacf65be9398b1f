//! Worked examples for a question: the taught examples most like it, ranked locally over the
//! lexicon's stems (BM25 over the examples' questions and notes, no embedding service), with a
//! share for the tables the question's schema context already holds, kept within a token budget.

use std::collections::HashMap;

use super::question::content_stems;
use super::{Example, Teaching};
use crate::estimate_tokens;

/// BM25's term-frequency saturation and length normalisation.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Words of the note count this much of a word of the question.
const NOTE_WEIGHT: f64 = 0.5;
/// Share of the best text score an example gets for each table it reads that the question's
/// schema context holds.
const TABLE_SHARE: f64 = 0.15;
/// Examples scoring below this share of the best one are left out.
const MIN_RATIO: f64 = 0.3;
/// Most worked examples in one prompt, whatever the budget.
pub const MAX_IN_PROMPT: usize = 3;

/// An example's words, weighted.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Doc {
    terms: HashMap<String, f64>,
    len: f64,
}

pub(crate) fn doc(example: &Example) -> Doc {
    let mut terms: HashMap<String, f64> = HashMap::new();
    for s in content_stems(&example.question) {
        *terms.entry(s).or_default() += 1.0;
    }
    for s in content_stems(example.note.as_deref().unwrap_or("")) {
        *terms.entry(s).or_default() += NOTE_WEIGHT;
    }
    let len = terms.values().sum::<f64>().max(1.0);
    Doc { terms, len }
}

/// The examples (indexes into `examples`, among `usable`) to show for `question`, best first,
/// whose rendering fits `budget_tokens`. `tables` are the `schema.table` names of the schema
/// context. An example shares at least one content word with the question, or is not chosen.
pub fn choose(
    teaching: &Teaching,
    usable: &[usize],
    question: &str,
    tables: &[String],
    budget_tokens: usize,
) -> Vec<usize> {
    let scored = rank(teaching, usable, question, tables);
    let Some(&(_, best)) = scored.first() else { return Vec::new() };
    let mut chosen = Vec::new();
    let mut used = 0;
    for (i, score) in scored {
        if score < MIN_RATIO * best || chosen.len() >= MAX_IN_PROMPT {
            break;
        }
        let cost = estimate_tokens(&super::render_example(&teaching.examples[i]));
        if used + cost <= budget_tokens {
            chosen.push(i);
            used += cost;
        }
    }
    chosen
}

/// The usable examples sharing a content word with the question, with their scores, best first
/// (ties by id, so the order is stable).
pub fn rank(teaching: &Teaching, usable: &[usize], question: &str, tables: &[String]) -> Vec<(usize, f64)> {
    let terms = content_stems(question);
    if terms.is_empty() || usable.is_empty() {
        return Vec::new();
    }
    let examples = &teaching.examples;
    let prepared = &teaching.prepared().docs;
    let docs: Vec<(usize, &Doc)> = usable.iter().map(|&i| (i, &prepared[i])).collect();
    let n = docs.len() as f64;
    let avg_len = docs.iter().map(|(_, d)| d.len).sum::<f64>() / n;
    let idf: Vec<f64> = terms
        .iter()
        .map(|t| {
            let df = docs.iter().filter(|(_, d)| d.terms.contains_key(t)).count() as f64;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        })
        .collect();
    let mut scored: Vec<(usize, f64)> = docs
        .iter()
        .filter_map(|(i, d)| {
            let text: f64 = terms
                .iter()
                .zip(&idf)
                .filter_map(|(t, idf)| {
                    let tf = *d.terms.get(t)?;
                    Some(idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * d.len / avg_len)))
                })
                .sum();
            (text > 0.0).then_some((*i, text))
        })
        .collect();
    let best_text = scored.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    for (i, score) in &mut scored {
        let shared = examples[*i].tables().filter(|t| tables.contains(t)).count();
        *score += TABLE_SHARE * best_text * shared as f64;
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(examples[a.0].id.cmp(&examples[b.0].id)));
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teach::Read;

    fn ex(id: i64, question: &str, table: &str) -> Example {
        Example {
            id,
            question: question.into(),
            sql: format!("SELECT count(*) FROM public.{table}"),
            note: None,
            reads: vec![Read { schema: "public".into(), table: table.into(), columns: vec![] }],
        }
    }

    #[test]
    fn the_most_similar_examples_come_first() {
        let examples = Teaching::new(
            vec![
                ex(1, "How many orders were shipped last month?", "orders"),
                ex(2, "Top 5 customers by revenue", "customers"),
                ex(3, "Average rating of restaurants per city", "restaurants"),
            ],
            vec![],
            vec![],
        );
        let all = [0, 1, 2];
        let ranked = rank(&examples, &all, "Who are the top 10 customers by total revenue?", &[]);
        assert_eq!(ranked[0].0, 1);
        assert_eq!(ranked.len(), 1, "{ranked:?}");
        assert!(rank(&examples, &all, "weather in Oslo", &[]).is_empty());
        // Only usable examples are considered.
        assert!(rank(&examples, &[0, 2], "top customers by revenue", &[]).is_empty());
    }

    #[test]
    fn tables_of_the_schema_context_break_ties() {
        let examples =
            Teaching::new(vec![ex(1, "count of items", "orders"), ex(2, "count of items", "stock")], vec![], vec![]);
        let ranked = rank(&examples, &[0, 1], "count the items", &["public.stock".into()]);
        assert_eq!(ranked[0].0, 1);
    }

    #[test]
    fn the_budget_bounds_the_examples() {
        let examples = Teaching::new((0..20).map(|i| ex(i, "orders per status", "orders")).collect(), vec![], vec![]);
        let all: Vec<usize> = (0..20).collect();
        let chosen = choose(&examples, &all, "orders per status", &[], 10_000);
        assert_eq!(chosen.len(), MAX_IN_PROMPT);
        let one = estimate_tokens(&crate::teach::render_example(&examples.examples[0]));
        assert_eq!(choose(&examples, &all, "orders per status", &[], one * 2).len(), 2);
        assert!(choose(&examples, &all, "orders per status", &[], one - 1).is_empty());
    }
}
