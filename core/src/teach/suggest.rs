//! Starter questions: what a caller could ask, from the taught examples it may use (as taught)
//! and from the tables it can read (questions of shapes the offline engine answers: counts,
//! top rows by an amount, counts per category, counts per month).

use crate::lang::View;

/// At most `n` questions: the usable examples' questions first (in the order given), then
/// questions about the caller's largest tables; no question twice.
pub fn starter_questions(view: &View, examples: &[&str], n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let push = |q: String, out: &mut Vec<String>| {
        if out.len() < n && !out.iter().any(|o| o.eq_ignore_ascii_case(&q)) {
            out.push(q);
        }
    };
    for q in examples {
        push(q.trim().to_string(), &mut out);
    }
    let catalog = view.catalog;
    let mut order: Vec<usize> = (0..catalog.tables.len()).collect();
    // Larger tables first (never analysed ones after), then the catalog's order.
    order.sort_by(|&a, &b| catalog.tables[b].row_estimate.total_cmp(&catalog.tables[a].row_estimate).then(a.cmp(&b)));
    let per_table: Vec<Vec<String>> = order.iter().map(|&t| table_questions(view, t)).collect();
    // One question per table in turn, so that a few tables do not take every place.
    for round in 0..3 {
        for qs in &per_table {
            if let Some(q) = qs.get(round) {
                push(q.clone(), &mut out);
            }
        }
    }
    out
}

fn table_questions(view: &View, t: usize) -> Vec<String> {
    let table = &view.catalog.tables[t];
    let label = view.table_label(t);
    if label.is_empty() {
        return Vec::new();
    }
    let plural = plural(&label);
    let mut out = vec![format!("How many {plural} are there?")];
    let money = view.columns(t).find(|(_, c)| c.holds_money).map(|(ci, _)| ci);
    if let (Some(m), Some(_)) = (money, view.label_column(t)) {
        out.push(format!("What are the top 5 {plural} by {}?", view.column_label(t, m)));
    }
    let category = table.columns.iter().enumerate().find(|(ci, c)| {
        c.is_text() && !c.unique && Some(*ci) != view.label_column(t) && !view.column_words(t, *ci).is_empty()
    });
    if let Some((ci, _)) = category {
        out.push(format!("How many {plural} are there per {}?", view.column_label(t, ci)));
    }
    if table.columns.iter().any(|c| c.is_temporal()) {
        out.push(format!("How many {plural} were there per month?"));
    }
    out
}

/// "customer" -> "customers", "city" -> "cities", "address" -> "addresses"; a plural stays.
fn plural(label: &str) -> String {
    if label.ends_with('s') {
        return label.to_string();
    }
    if let Some(stem) = label.strip_suffix('y').filter(|s| !s.ends_with(['a', 'e', 'o', 'u'])) {
        return format!("{stem}ies");
    }
    if label.ends_with("ch") || label.ends_with("sh") || label.ends_with('x') {
        return format!("{label}es");
    }
    format!("{label}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Column, Table};

    #[test]
    fn examples_first_then_the_schema() {
        let mut orders = Table::new(
            "shop",
            "orders",
            vec![
                Column::new("id", "int", 'N'),
                Column::new("status", "text", 'S'),
                Column::new("placed_at", "date", 'D'),
            ],
        );
        orders.row_estimate = 100.0;
        let cities = Table::new("shop", "city", vec![Column::new("name", "text", 'S')]);
        let catalog = Catalog { tables: vec![cities, orders] };
        let view = View::new(&catalog, None);
        let qs = starter_questions(&view, &["Revenue last month?"], 4);
        assert_eq!(
            qs,
            [
                "Revenue last month?",
                "How many orders are there?",
                "How many cities are there?",
                "How many orders are there per status?"
            ]
        );
        assert_eq!(starter_questions(&view, &[], 0), Vec::<String>::new());
        assert_eq!(plural("category"), "categories");
        assert_eq!(plural("box"), "boxes");
    }
}
