//! Measures: counts ("how many", "number of"), aggregates ("average", "total"), money words
//! ("revenue"), and superlatives ("the most", "highest", "most expensive", "best-selling").

use super::Build;
use crate::offline::joins::Links;
use crate::offline::query::{Agg, ColRef, Elapsed, Measure, OrderKey};
use crate::offline::read::{Cue, Item};
use crate::offline::schema::{Target, SALE_VERBS};
use crate::offline::Decline;

impl Build<'_> {
    /// "how many X", "number of distinct X": rows of the base table, or distinct values of a column.
    pub(super) fn count(&mut self, k: usize) -> Result<usize, Decline> {
        let mut j = k + 1;
        let distinct = matches!(self.items.get(j), Some((_, _, Item::Cue(Cue::Distinct))));
        if distinct {
            j += 1;
        }
        let Some((targets, plural)) = self.mention_at(j) else {
            return Err("\"how many\" / \"number of\" is not followed by what to count".into());
        };
        if let Some(c) = self.summed[j].filter(|c| c.table == self.base && !distinct) {
            // "how many units": their sum.
            self.sum_measure(c);
            self.named_columns.push(c);
        } else {
            let m = self.count_of(&targets, distinct).ok_or("cannot tell what to count")?;
            if m == Measure::rows() {
                self.subject.table.get_or_insert((self.items[j].0, plural));
            }
            self.q.push_measure(m);
        }
        Ok(j + 1)
    }

    /// What counting the rows or values a mention names means: the base table's rows, the distinct
    /// values of a text column ("how many cities"), or the distinct rows of a joined table ("how
    /// many customers" of transactions: the customers they refer to).
    fn count_of(&self, targets: &[Target], distinct: bool) -> Option<Measure> {
        if self.names_base(targets) && !distinct {
            return Some(Measure::rows());
        }
        if let Some(c) = self.p.column_of(self.base, targets) {
            return (!self.p.is_numeric(c)).then(|| Measure::of(Agg::CountDistinct, Some(c)));
        }
        let entity = self.p.entity_of(self.base, targets)?;
        let key = self.p.vocab.view.key_column(entity)?;
        Some(Measure::of(Agg::CountRelated, Some(ColRef { table: entity, column: key })))
    }

    /// "average X", "total X", "maximum X"; "total number of" is a count.
    pub(super) fn aggregate(&mut self, k: usize, agg: Agg) -> Result<usize, Decline> {
        if let Some((_, _, Item::Cue(Cue::Elapsed(unit)))) = self.items.get(k + 1) {
            return self.elapsed(k + 2, agg, *unit);
        }
        let Some((targets, _)) = self.mention_at(k + 1) else {
            return Err("an aggregate is not followed by a column".into());
        };
        let end = self.items[k].1;
        // Sums and averages of a joined table's column would count its rows once per base row.
        let summable = |c: ColRef, base: usize| c.table == base || matches!(agg, Agg::Min | Agg::Max);
        let how_much = self.p.word(self.items[k].0) == "how";
        match self.p.column_of(self.base, &targets) {
            Some(c) if self.p.is_numeric(c) && summable(c, self.base) && self.items[k + 1].0 == end => {
                self.q.push_measure(Measure::of(agg, Some(c)));
                self.named_columns.push(c);
            }
            Some(c) if matches!(agg, Agg::Min | Agg::Max) && self.p.is_temporal(c) => {
                self.q.push_measure(Measure::of(agg, Some(c)));
            }
            _ if agg == Agg::Sum && !how_much && self.names_base(&targets) => {
                self.q.push_measure(Measure::rows());
            }
            _ => return Err("an aggregate applies to a column that is not numeric".into()),
        }
        Ok(k + 2)
    }

    /// "average days between order and shipment": the time between the two date columns the
    /// mention at item `k` names, aggregated.
    fn elapsed(&mut self, k: usize, agg: Agg, unit: Elapsed) -> Result<usize, Decline> {
        let Some((targets, _)) = self.mention_at(k) else {
            return Err("a time between two dates without the dates".into());
        };
        let [Target::Column(t, from), Target::Column(t2, to)] = targets[..] else {
            return Err("a time between two dates without the dates".into());
        };
        if t != self.base || t2 != t || !matches!(agg, Agg::Avg | Agg::Min | Agg::Max) {
            return Err("a time between two dates is read only as an average, shortest or longest".into());
        }
        let (from, to) = (ColRef { table: t, column: from }, ColRef { table: t, column: to });
        self.q.push_measure(Measure { agg, column: Some(to), since: Some((from, unit)) });
        self.named_columns.extend([from, to]);
        Ok(k + 1)
    }

    /// "average order value": the sums of the column over the base table's rows that are parts of
    /// each row of `parent`, averaged.
    pub(super) fn per_row(&mut self, k: usize, parent: usize) -> Result<usize, Decline> {
        let column = self.mention_at(k + 1).and_then(|(targets, _)| self.p.column_of(self.base, &targets));
        let Some(c) = column.filter(|c| c.table == self.base) else {
            return Err("the value of a row is not on the rows the question counts".into());
        };
        let links = Links::new(self.p.vocab.view);
        let Some(hop) = links.single_hop(self.base, parent) else {
            return Err("the rows summed do not refer to the rows averaged over".into());
        };
        let referring = hop.pairs.iter().map(|(from, _)| ColRef { table: self.base, column: *from }).collect();
        self.q.per_row = Some((parent, referring));
        if let Some((price, quantity)) = self.p.vocab.view.line_value(c.table).filter(|(price, _)| *price == c.column) {
            self.q
                .line_values
                .push((ColRef { table: c.table, column: price }, ColRef { table: c.table, column: quantity }));
        }
        self.q.push_measure(Measure::of(Agg::PerRow, Some(c)));
        self.named_columns.push(c);
        Ok(k + 2)
    }

    /// "the most X", "highest X", "the longest rivers", "most expensive product".
    pub(super) fn superlative(&mut self, k: usize, desc: bool) -> Result<usize, Decline> {
        match self.items.get(k + 1).map(|x| x.2.clone()) {
            Some(Item::Cue(Cue::Count)) => {
                let Some((targets, _)) = self.mention_at(k + 2) else {
                    return Err("\"most\" is not followed by what to count".into());
                };
                let measure = self.count_of(&targets, false).ok_or("cannot tell what to count")?;
                let m = self.q.push_measure(measure);
                self.q.order = Some((OrderKey::Measure(m), desc));
                Ok(k + 3)
            }
            Some(Item::Cue(Cue::Agg(agg))) => {
                let Some((targets, _)) = self.mention_at(k + 2) else {
                    return Err("an aggregate is not followed by a column".into());
                };
                let base = self.base;
                let summable = |c: &ColRef| c.table == base || matches!(agg, Agg::Min | Agg::Max);
                let Some(c) = self.p.column_of(base, &targets).filter(|c| self.p.is_numeric(*c) && summable(c)) else {
                    return Err("an aggregate applies to a column that is not numeric".into());
                };
                let m = self.q.push_measure(Measure::of(agg, Some(c)));
                self.q.order = Some((OrderKey::Measure(m), desc));
                Ok(k + 3)
            }
            // "the longest time between order and delivery"
            Some(Item::Cue(Cue::Elapsed(unit))) => self.elapsed(k + 2, if desc { Agg::Max } else { Agg::Min }, unit),
            Some(Item::Mention { targets, plural, .. }) => self.superlative_of(k, desc, &targets, plural),
            _ => Err("a superlative is not followed by what it ranks".into()),
        }
    }

    fn superlative_of(&mut self, k: usize, desc: bool, targets: &[Target], plural: bool) -> Result<usize, Decline> {
        if let Some(c) = self.summed[k + 1].filter(|c| c.table == self.base) {
            // "the most revenue": the groups ranked by their sum.
            let m = self.sum_measure(c);
            self.q.order = Some((OrderKey::Measure(m), desc));
            return Ok(k + 2);
        }
        let col = self.p.column_of(self.base, targets).filter(|c| self.p.is_numeric(*c) || self.p.is_temporal(*c));
        let followed_by_of_table = matches!(self.p.word(self.items[k + 1].1), "of" | "among")
            && self.mention_at(k + 2).is_some_and(|(t, _)| self.names_base(&t));
        if let Some(c) = col.filter(|c| c.table == self.base && self.p.is_numeric(*c)) {
            // "the highest rated product": a joined table's rows, by the average of their rows' values.
            let entity = self.mention_at(k + 2).and_then(|(t, plural)| {
                let adjacent = self.items[k + 2].0 == self.items[k + 1].1;
                let entity = self.p.entity_of(self.base, &t).filter(|_| self.p.column_of(self.base, &t).is_none());
                entity.filter(|_| adjacent && self.subject.entity.is_none()).map(|e| (e, plural))
            });
            if let Some((entity, plural)) = entity {
                let m = self.q.push_measure(Measure::of(Agg::Avg, Some(c)));
                self.q.order = Some((OrderKey::Measure(m), desc));
                self.named_columns.push(c);
                self.subject.entity = Some(entity);
                self.subject.plural = plural;
                return Ok(k + 3);
            }
        }
        if let Some(c) = col {
            self.named_columns.push(c);
            let alone = self.subject.table.is_none() && self.subject.column.is_none() && self.loose.is_empty();
            if followed_by_of_table || alone {
                self.q.push_measure(Measure::of(if desc { Agg::Max } else { Agg::Min }, Some(c)));
            } else {
                self.q.order = Some((OrderKey::Column(c), desc));
            }
            return Ok(k + 2);
        }
        if !self.names_base(targets) {
            return Err("a superlative applies to something that cannot be ordered".into());
        }
        if self.subject.column.is_some() || self.subject.entity.is_some() {
            // "which street has the most restaurants"
            let m = self.q.push_measure(Measure::rows());
            self.q.order = Some((OrderKey::Measure(m), desc));
        } else {
            // "the longest rivers", "the most expensive product": the column the adjective
            // measures, or a key named elsewhere ("ordered by ...").
            self.order.superlative = Some(desc);
            let adjective = self.p.word(self.items[k].1 - 1).to_string();
            let recency = matches!(adjective.as_str(), "recent" | "newest" | "latest" | "earliest");
            let column = if recency {
                let named = self.named_columns.clone();
                Some(self.p.date_column(self.base, &named)?)
            } else {
                self.p.adjective_column(self.base, &adjective)
            };
            if let Some(c) = column {
                self.q.order = Some((OrderKey::Column(c), desc));
                self.named_columns.push(c);
            }
            if self.subject.table.is_none() {
                self.subject.table = Some((self.items[k + 1].0, plural));
                self.subject.plural = plural;
            }
        }
        Ok(k + 2)
    }

    /// The sum a money or quantity word means: of the amount or quantity column, or of price
    /// times quantity for order lines; its index in the query.
    pub(super) fn sum_measure(&mut self, c: ColRef) -> usize {
        if let Some((price, quantity)) = self.p.vocab.view.line_value(c.table) {
            if price == c.column {
                self.q.line_values.push((c, ColRef { table: c.table, column: quantity }));
            }
        }
        self.q.push_measure(Measure::of(Agg::Sum, Some(c)))
    }

    /// Verbs of selling and earning ("units sold", "brought in the most revenue") say what a sum
    /// of units or money counts: accounted for when the query sums one.
    pub(super) fn explain_sales_verbs(&mut self) {
        const EARNING: &[&str] =
            &["brought", "bring", "brings", "generated", "generate", "generates", "earned", "earn"];
        let sums_units_or_money = self.q.measures.iter().any(|m| {
            m.agg == Agg::Sum
                && m.column.is_some_and(|c| {
                    self.summed.contains(&Some(c)) || self.p.vocab.view.column(c.table, c.column).holds_money
                })
        });
        if !sums_units_or_money {
            return;
        }
        for i in 0..self.p.toks.len() {
            let word = self.p.word(i);
            if !self.p.free(i) {
                continue;
            }
            if SALE_VERBS.contains(&word) {
                self.p.mark(i, i + 1);
            } else if EARNING.contains(&word) {
                // "brought in": the particle goes with the verb.
                let particle = matches!(self.p.word(i + 1), "in") && self.p.free(i + 1);
                self.p.mark(i, i + 1 + usize::from(particle));
            }
        }
    }

    /// A measure phrase starting at item `k` ("number of customers", "total amount"): how many
    /// items it spans and its index in the query.
    pub(super) fn measure_at(&mut self, k: usize) -> Result<(usize, usize), Decline> {
        let Some((targets, _)) = self.mention_at(k + 1) else {
            return Err("a measure without its column".into());
        };
        let m = match &self.items[k].2 {
            Item::Cue(Cue::Count) => self.count_of(&targets, false).ok_or("cannot tell what to count")?,
            Item::Cue(Cue::Agg(agg)) => {
                let c = self
                    .p
                    .column_of(self.base, &targets)
                    .filter(|c| self.p.is_numeric(*c))
                    .ok_or("an aggregate of a column that is not numeric")?;
                Measure::of(*agg, Some(c))
            }
            _ => return Err("a measure without its column".into()),
        };
        Ok((2, self.q.push_measure(m)))
    }
}
