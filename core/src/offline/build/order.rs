//! Order: "ordered by X", "from highest to lowest", "in descending order", "alphabetically",
//! "top N", and superlatives whose key is named elsewhere.

use super::Build;
use crate::offline::query::{ColRef, OrderKey};
use crate::offline::read::{Cue, Item};
use crate::offline::Decline;

impl Build<'_> {
    /// "ordered by X", "sorted by the number of X".
    pub(super) fn order_by(&mut self, k: usize) -> Result<usize, Decline> {
        let desc = self.order.direction.unwrap_or(false);
        match self.items.get(k + 1).map(|x| x.2.clone()) {
            Some(Item::Mention { targets, .. }) => {
                let Some(c) = self.p.column_of(self.base, &targets) else { return Err("ordering by a table".into()) };
                self.q.order = Some((OrderKey::Column(c), desc));
                self.named_columns.push(c);
                Ok(k + 2)
            }
            Some(Item::Cue(Cue::Count)) | Some(Item::Cue(Cue::Agg(_))) => {
                let (consumed, m) = self.measure_at(k + 1)?;
                self.q.order = Some((OrderKey::Measure(m), desc));
                Ok(k + 1 + consumed)
            }
            _ => Err("\"ordered by\" is not followed by a column".into()),
        }
    }

    /// "from highest to lowest": the direction, and the column named inside or right after it.
    pub(super) fn range(&mut self, k: usize, desc: bool, until: usize) -> usize {
        self.order.direction = Some(desc);
        if let Some((start, _, Item::Mention { targets, .. })) = self.items.get(k + 1).cloned() {
            if let Some(c) = self.p.column_of(self.base, &targets).filter(|_| start <= until) {
                self.q.order = Some((OrderKey::Column(c), desc));
                self.named_columns.push(c);
                return k + 2;
            }
        }
        k + 1
    }

    /// Top N, a superlative's direction, an explicit direction and "alphabetically" applied to
    /// the order found.
    pub(super) fn settle_order(&mut self, label: Option<ColRef>) -> Result<(), Decline> {
        let o = &self.order;
        if let Some((desc, n)) = o.top {
            self.q.limit = Some(n);
            if self.q.order.is_none() && o.superlative.is_none() && o.direction.is_none() {
                return Err("\"top N\" without what to rank by".into());
            }
            if let Some((key, _)) = self.q.order {
                self.q.order = Some((key, o.direction.unwrap_or(desc)));
            }
        }
        if let Some(desc) = o.superlative {
            let Some((key, _)) = self.q.order else {
                return Err("a superlative without the column it ranks by".into());
            };
            self.q.order = Some((key, desc));
        }
        if let (Some(desc), Some((key, _))) = (o.direction, self.q.order) {
            self.q.order = Some((key, desc));
        }
        if o.alphabetical {
            let subject = self.subject.column.map(|(c, _)| c);
            let key = subject.or(self.q.outputs.first().copied()).or(label).ok_or("nothing to sort alphabetically")?;
            if self.q.order.is_some() {
                return Err("two orders".into());
            }
            self.q.order = Some((OrderKey::Column(key), false));
        }
        Ok(())
    }
}
