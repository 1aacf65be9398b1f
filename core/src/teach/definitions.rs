//! Definitions for a question: standing instructions (a definition without a term) always, and
//! each definition whose term the question uses, compared as stems in order with stop words left
//! out ("active customers" uses the term "active customer"; "cost of goods sold" is found in
//! "the costs of the goods sold"). Kept within a token budget of their own.

use super::question::stem_sequence;
use super::Teaching;
use crate::estimate_tokens;

/// Token budget of the definitions in one prompt.
pub const BUDGET_TOKENS: usize = 400;

/// The definitions (indexes) to send with `question`: standing instructions first, then terms
/// the question uses, longer terms first; within `BUDGET_TOKENS`.
pub fn choose(teaching: &Teaching, question: &str) -> Vec<usize> {
    let definitions = &teaching.definitions;
    let terms = &teaching.prepared().terms;
    let asked = stem_sequence(question);
    let mut standing: Vec<usize> = Vec::new();
    let mut used: Vec<(usize, usize)> = Vec::new();
    for (i, d) in definitions.iter().enumerate() {
        match d.term.as_deref() {
            None => standing.push(i),
            Some(_) => {
                let term = &terms[i];
                if !term.is_empty() && asked.windows(term.len()).any(|w| w == term.as_slice()) {
                    used.push((i, term.len()));
                }
            }
        }
    }
    used.sort_by(|a, b| b.1.cmp(&a.1).then(definitions[a.0].id.cmp(&definitions[b.0].id)));
    let mut chosen = Vec::new();
    let mut tokens = 0;
    for i in standing.into_iter().chain(used.into_iter().map(|(i, _)| i)) {
        let cost = estimate_tokens(&super::render_definition(&definitions[i])) + 1;
        if tokens + cost <= BUDGET_TOKENS {
            chosen.push(i);
            tokens += cost;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teach::Definition;

    fn def(id: i64, term: Option<&str>, meaning: &str) -> Definition {
        Definition { id, term: term.map(str::to_string), meaning: meaning.into() }
    }

    #[test]
    fn terms_are_found_stemmed_and_in_order() {
        let defs = Teaching::new(
            vec![],
            vec![
                def(1, Some("active customer"), "a customer with an order in the last 90 days"),
                def(2, Some("cost of goods sold"), "sum of unit_cost * quantity"),
                def(3, Some("churn"), "customers who stopped ordering"),
                def(4, None, "Amounts are in euros."),
            ],
            vec![],
        );
        assert_eq!(choose(&defs, "How many Active Customers do we have?"), [3, 0]);
        assert_eq!(choose(&defs, "total costs of the goods sold in 2024"), [3, 1]);
        assert_eq!(choose(&defs, "customers active last year"), [3]);
        assert_eq!(choose(&defs, "monthly churn rate"), [3, 2]);
    }

    #[test]
    fn the_budget_bounds_them() {
        let long = "x ".repeat(500);
        let defs = Teaching::new(vec![], (0..10).map(|i| def(i, None, &long)).collect(), vec![]);
        let chosen = choose(&defs, "anything");
        assert!(!chosen.is_empty() && chosen.len() < 10, "{chosen:?}");
    }
}
