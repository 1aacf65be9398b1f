//! "Which customers have never placed an order?", "products without reviews": the base table's
//! rows that no row of the named table refers to, along the one key between them.

use super::Build;
use crate::offline::joins::Links;
use crate::offline::query::{ColRef, Filter};
use crate::offline::schema::Target;
use crate::offline::Decline;

impl Build<'_> {
    pub(super) fn never(&mut self) -> Result<(), Decline> {
        let never = std::mem::take(&mut self.p.never);
        if never.is_empty() {
            return Ok(());
        }
        let links = Links::new(self.p.vocab.view);
        for (_, targets) in never {
            let referring: Vec<_> = targets
                .iter()
                .filter_map(|t| match t {
                    Target::Table(r) if *r != self.base => links.single_hop(*r, self.base).map(|h| (*r, h.clone())),
                    _ => None,
                })
                .collect();
            let [(table, hop)] = referring.as_slice() else {
                return Err(
                    "\"never\" / \"without\" is not followed by a table that refers to the rows asked about".into()
                );
            };
            let pairs = hop
                .pairs
                .iter()
                .map(|(inner, outer)| {
                    (ColRef { table: *table, column: *inner }, ColRef { table: self.base, column: *outer })
                })
                .collect();
            self.p.event_tables.push(*table);
            self.anti.push(Filter::NotExists { table: *table, pairs });
        }
        Ok(())
    }
}
