//! Join paths along declared foreign keys. Only many-to-one steps are taken (from a table to the
//! table it references), so joining never repeats a row of the table the question counts or sums.

use std::collections::HashMap;

use crate::catalog::Catalog;

/// Join paths this long at most.
pub(crate) const MAX_HOPS: usize = 2;

/// One many-to-one step: `from` references `to` on these column pairs (indexes into each table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    pub from: usize,
    pub to: usize,
    pub pairs: Vec<(usize, usize)>,
}

/// How a table is reached from the base table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The one shortest path.
    Path(Vec<Hop>),
    /// Two different paths are equally short (two foreign keys to the same table, or two routes).
    Ambiguous,
}

/// The foreign keys of a table as hops, skipping keys whose tables or columns are not in the
/// catalog (the caller may not see them).
fn hops_from(catalog: &Catalog, from: usize, index: &HashMap<(&str, &str), usize>) -> Vec<Hop> {
    let Some(table) = catalog.tables.get(from) else { return Vec::new() };
    table
        .foreign_keys
        .iter()
        .filter_map(|fk| {
            let to = *index.get(&(fk.ref_schema.as_str(), fk.ref_table.as_str()))?;
            let target = catalog.tables.get(to)?;
            if fk.columns.is_empty() || fk.columns.len() != fk.ref_columns.len() {
                return None;
            }
            let pairs = fk
                .columns
                .iter()
                .zip(&fk.ref_columns)
                .map(|(a, b)| {
                    Some((
                        table.columns.iter().position(|c| &c.name == a)?,
                        target.columns.iter().position(|c| &c.name == b)?,
                    ))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Hop { from, to, pairs })
        })
        .collect()
}

/// Tables by `(schema, name)`.
pub(crate) fn table_index(catalog: &Catalog) -> HashMap<(&str, &str), usize> {
    catalog.tables.iter().enumerate().map(|(i, t)| ((t.schema.as_str(), t.name.as_str()), i)).collect()
}

/// Every table reachable from `base` in at most `MAX_HOPS` many-to-one steps, with its path.
pub(crate) fn reachable(catalog: &Catalog, base: usize, index: &HashMap<(&str, &str), usize>) -> HashMap<usize, Reach> {
    let mut found: HashMap<usize, Reach> = HashMap::new();
    let mut frontier: Vec<(usize, Vec<Hop>)> = vec![(base, Vec::new())];
    for _ in 0..MAX_HOPS {
        let mut next: HashMap<usize, Reach> = HashMap::new();
        for (table, path) in &frontier {
            for hop in hops_from(catalog, *table, index) {
                let to = hop.to;
                if to == base || found.contains_key(&to) {
                    continue;
                }
                let mut p = path.clone();
                p.push(hop);
                match next.get(&to) {
                    None => {
                        next.insert(to, Reach::Path(p));
                    }
                    Some(Reach::Path(existing)) if *existing == p => {}
                    Some(_) => {
                        next.insert(to, Reach::Ambiguous);
                    }
                }
            }
        }
        frontier = next
            .iter()
            .filter_map(|(t, r)| match r {
                Reach::Path(p) => Some((*t, p.clone())),
                Reach::Ambiguous => None,
            })
            .collect();
        frontier.sort_by_key(|(t, _)| *t);
        found.extend(next);
    }
    found
}
