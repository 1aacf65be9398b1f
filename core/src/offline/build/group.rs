//! Groups: "per X", "by X", "each X", "by X and Y", rows of a joined table ("by product
//! category"), and time buckets ("per month", "monthly", "each year").

use super::Build;
use crate::lang::words::{is_bucket_adjective, time_unit, TimeUnit};
use crate::offline::query::{GroupKey, Measure, OrderKey};
use crate::offline::read::{Cue, Item};
use crate::offline::Decline;

impl Build<'_> {
    /// "per X", "each X" (`by` false) and "by X": a group, or with "by" the order of the rows
    /// ("top 5 restaurants by rating", "by revenue", "by number of customers").
    pub(super) fn group(&mut self, k: usize, by: bool) -> Result<usize, Decline> {
        match self.items.get(k + 1).map(|x| x.2.clone()) {
            Some(Item::Mention { targets, .. }) => {
                if let (true, Some(c)) = (by, self.summed[k + 1].filter(|c| c.table == self.base)) {
                    // "top 5 customers by revenue"
                    let m = self.sum_measure(c);
                    self.q.order = Some((OrderKey::Measure(m), true));
                    return Ok(k + 2);
                }
                let column = self.p.column_of(self.base, &targets);
                if let Some(t) = column.is_none().then(|| self.p.entity_of(self.base, &targets)).flatten() {
                    // "by product category": the rows of a joined table.
                    self.q.groups.push(self.p.entity_group(t)?);
                    return Ok(k + 2);
                }
                let Some(c) = column else {
                    return Err("grouping by a whole table is not something the offline engine does".into());
                };
                let year_column = self.p.year_column(self.base);
                if by
                    && self.p.is_numeric(c)
                    && self.q.groups.is_empty()
                    && self.q.measures.is_empty()
                    && year_column != Some(c)
                {
                    // "top 5 restaurants by rating"
                    self.q.order = Some((OrderKey::Column(c), true));
                } else if year_column == Some(c) || !self.p.is_temporal(c) {
                    self.q.groups.push(GroupKey::Column(c));
                } else {
                    return Err("grouping by a raw date: ask per day, week, month or year".into());
                }
                self.named_columns.push(c);
                Ok(self.second_group(k + 2))
            }
            Some(Item::Cue(Cue::Count)) | Some(Item::Cue(Cue::Agg(_))) if by => {
                // "by number of customers": the order of a grouped answer.
                let (consumed, m) = self.measure_at(k + 1)?;
                self.q.order = Some((OrderKey::Measure(m), true));
                Ok(k + 1 + consumed)
            }
            _ => self.bucket(k),
        }
    }

    /// "the most common payment method": the column's values by how many rows have each.
    pub(super) fn common(&mut self, k: usize, desc: bool) -> Result<usize, Decline> {
        let Some((targets, plural)) = self.mention_at(k + 1) else {
            return Err("\"most common\" is not followed by what is counted".into());
        };
        let Some(c) = self.p.column_of(self.base, &targets) else {
            return Err("\"most common\" or \"most popular\" rows of a table: among what is unclear".into());
        };
        if self.subject.column.is_some() || self.subject.entity.is_some() {
            return Err("two things whose rows are counted".into());
        }
        self.subject.column = Some((c, self.items[k + 1].1));
        self.subject.plural = plural;
        self.named_columns.push(c);
        let m = self.q.push_measure(Measure::rows());
        self.q.order = Some((OrderKey::Measure(m), desc));
        Ok(k + 2)
    }

    /// "by X and Y": the second group right after "and".
    fn second_group(&mut self, mut j: usize) -> usize {
        while self.q.groups.len() == 1 {
            let Some((start, _, Item::Mention { targets, .. })) = self.items.get(j).cloned() else { break };
            if self.p.word(start.wrapping_sub(1)) != "and" || self.items[j - 1].1 + 1 != start {
                break;
            }
            let Some(c2) = self.p.column_of(self.base, &targets) else { break };
            self.q.groups.push(GroupKey::Column(c2));
            j += 1;
        }
        j
    }

    /// "per month", "each year": a time bucket of the table's date (or its year column).
    fn bucket(&mut self, k: usize) -> Result<usize, Decline> {
        let next = self.items[k].1;
        if let Some(unit) = time_unit(self.p.word(next)) {
            self.p.mark(next, next + 1);
            let key = self.bucket_key(unit)?;
            self.q.groups.push(key);
            return Ok(k + 1);
        }
        // Left unexplained: a column's comment may account for it ("people per square
        // kilometer"), else the question declines.
        let (start, end, _) = self.items[k];
        self.p.unmark(start, end);
        Ok(k + 1)
    }

    fn bucket_key(&mut self, unit: TimeUnit) -> Result<GroupKey, Decline> {
        Ok(match (unit, self.p.year_column(self.base)) {
            (TimeUnit::Year, Some(c)) => GroupKey::Column(c),
            _ => GroupKey::Bucket(self.p.date_column(self.base, &self.named_columns.clone())?, unit),
        })
    }

    /// Bucket words standing alone ("monthly average price").
    pub(super) fn bucket_adjectives(&mut self) -> Result<(), Decline> {
        for i in 0..self.p.toks.len() {
            let word = self.p.word(i).to_string();
            if self.p.free(i) && is_bucket_adjective(&word) {
                let unit = time_unit(&word).unwrap_or(TimeUnit::Month);
                let key = self.bucket_key(unit)?;
                self.q.groups.push(key);
                self.p.mark(i, i + 1);
            }
        }
        Ok(())
    }
}
