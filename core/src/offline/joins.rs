//! Join paths along foreign keys, declared or implied by the usual naming conventions
//! (`customer_id` -> `customers.id`, `sbtxcustid` -> `sbcustomer.sbcustid`, `aid` -> the table
//! keyed by `aid`). Only many-to-one steps are taken (from a table to the table it references,
//! onto that table's key), so joining never repeats a row of the table the question counts or sums.

use std::collections::HashMap;

use crate::catalog::Catalog;
use crate::lang::{stem, View};

/// Join paths this long at most.
pub(crate) const MAX_HOPS: usize = 2;

/// Shortest abbreviation of a table name a column may use (`cust` for `customer`).
const MIN_ABBREVIATION: usize = 3;

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

/// Every many-to-one step out of each of the caller's tables.
pub(crate) struct Links {
    hops: Vec<Vec<Hop>>,
}

impl Links {
    pub(crate) fn new(view: &View) -> Links {
        let catalog = view.catalog;
        let index: HashMap<(&str, &str), usize> =
            catalog.tables.iter().enumerate().map(|(i, t)| ((t.schema.as_str(), t.name.as_str()), i)).collect();
        let keyed = KeyedTables::new(view);
        let hops = (0..catalog.tables.len())
            .map(|from| {
                let mut hops = declared_hops(catalog, from, &index);
                for hop in keyed.implied_hops(view, from) {
                    let declared = hops.iter().any(|h| h.pairs.iter().any(|p| p.0 == hop.pairs[0].0));
                    if !declared {
                        hops.push(hop);
                    }
                }
                hops
            })
            .collect();
        Links { hops }
    }

    fn from(&self, table: usize) -> &[Hop] {
        self.hops.get(table).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The one step from `from` to `to`, if there is exactly one.
    pub(crate) fn single_hop(&self, from: usize, to: usize) -> Option<&Hop> {
        let mut found = self.from(from).iter().filter(|h| h.to == to);
        match (found.next(), found.next()) {
            (Some(h), None) => Some(h),
            _ => None,
        }
    }
}

/// The foreign keys of a table as hops, skipping keys whose tables or columns are not in the
/// catalog (the caller may not see them).
fn declared_hops(catalog: &Catalog, from: usize, index: &HashMap<(&str, &str), usize>) -> Vec<Hop> {
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

/// The caller's tables that have a key column, by schema, with the names they go by.
struct KeyedTables<'v> {
    by_schema: HashMap<&'v str, Vec<Keyed>>,
}

struct Keyed {
    table: usize,
    key: usize,
    /// The key is declared (primary key or unique), not only named like one.
    declared: bool,
    key_name: String,
    /// The table's name as a column would name it: lowercase, separators removed, with and
    /// without its namespace prefix, as written and stemmed.
    names: Vec<String>,
}

impl<'v> KeyedTables<'v> {
    fn new(view: &'v View) -> Self {
        let mut by_schema: HashMap<&str, Vec<Keyed>> = HashMap::new();
        for (t, table) in view.catalog.tables.iter().enumerate() {
            let Some(key) = view.key_column(t) else { continue };
            let entry = view.table(t);
            // A table of keys only links others (`writes (aid, pid)`): its "key" is not unique.
            let declared = table.primary_key.len() == 1 || table.columns[key].unique;
            if !declared && view.columns(t).all(|(_, c)| c.key_like || c.refers_to.is_some()) {
                continue;
            }
            let index = view.index();
            let rest: String = view.table_words(t).concat();
            let mut names = vec![index.stem_of(entry.normalized_name).to_string(), stem(&rest), rest];
            names.sort();
            names.dedup();
            by_schema.entry(table.schema.as_str()).or_default().push(Keyed {
                table: t,
                key,
                declared,
                key_name: table.columns[key].name.to_lowercase(),
                names,
            });
        }
        KeyedTables { by_schema }
    }

    /// Steps implied by column names: a column named like another table's declared key (`aid`
    /// when `author.aid` is its primary key; never a bare `id`), or naming the other table
    /// (`customer_id`, `sbtxcustid` for `sbcustomer`), onto that table's key; only when exactly
    /// one table fits and both columns hold the same kind of value. A key only named like one
    /// (`pid` in `publication`) is trusted when the column names its table, not for a name alike.
    fn implied_hops(&self, view: &View, from: usize) -> Vec<Hop> {
        let catalog = view.catalog;
        let table = &catalog.tables[from];
        let Some(candidates) = self.by_schema.get(table.schema.as_str()) else { return Vec::new() };
        let own_key = view.key_column(from);
        let mut hops = Vec::new();
        for (ci, entry) in view.columns(from) {
            if Some(ci) == own_key {
                continue;
            }
            let column = &table.columns[ci];
            let name = column.name.to_lowercase();
            let rest: String = entry.label_words().iter().map(|w| view.index().raw(w)).collect();
            let heads: Vec<String> = [name.as_str(), rest.as_str()]
                .iter()
                .filter_map(|n| n.strip_suffix("id"))
                .map(|h| h.replace('_', ""))
                .filter(|h| h.len() >= 2)
                .collect();
            let names_table = |k: &Keyed| {
                heads.iter().any(|h| {
                    let s = stem(h);
                    k.names.iter().any(|n| *n == *h || *n == s || (h.len() >= MIN_ABBREVIATION && n.starts_with(&**h)))
                })
            };
            let fits: Vec<&Keyed> = candidates
                .iter()
                .filter(|k| k.table != from && catalog.tables[k.table].columns[k.key].category == column.category)
                .filter(|k| (k.declared && k.key_name == name && name != "id" && name.len() > 2) || names_table(k))
                .collect();
            if let [k] = fits.as_slice() {
                hops.push(Hop { from, to: k.table, pairs: vec![(ci, k.key)] });
            }
        }
        hops
    }
}

/// Every table reachable from `base` in at most `MAX_HOPS` many-to-one steps, with its path.
pub(crate) fn reachable(links: &Links, base: usize) -> HashMap<usize, Reach> {
    let mut found: HashMap<usize, Reach> = HashMap::new();
    let mut frontier: Vec<(usize, Vec<Hop>)> = vec![(base, Vec::new())];
    for _ in 0..MAX_HOPS {
        let mut next: HashMap<usize, Reach> = HashMap::new();
        for (table, path) in &frontier {
            for hop in links.from(*table) {
                let to = hop.to;
                if to == base || found.contains_key(&to) {
                    continue;
                }
                let mut p = path.clone();
                p.push(hop.clone());
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
