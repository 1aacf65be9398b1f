//! Table ranking and schema context. (stub: being written)

use crate::catalog::Catalog;

pub fn select_tables(catalog: &Catalog, _question: &str, _budget_tokens: usize) -> Vec<usize> {
    (0..catalog.tables.len().min(8)).collect()
}

pub fn render_schema(catalog: &Catalog, tables: &[usize]) -> String {
    tables.iter().map(|&i| format!("-- {}\n", catalog.tables[i].qualified_name())).collect()
}
