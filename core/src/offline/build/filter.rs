//! Filters: comparisons on numeric columns ("rating above 4"), values found in the data, time
//! ranges ("in 2024", "in the last 30 days", "since April 1, 2023"), the two parts of a share
//! ("share of cancelled orders"), and joined tables that only say where a value is.

use super::Build;
use crate::offline::query::{ColRef, Filter, GroupKey, MatchMode, Ratio, Unit};
use crate::offline::read::TimePhrase;
use crate::offline::Decline;

impl Build<'_> {
    pub(super) fn filters(&mut self) -> Result<(), Decline> {
        let mut filters = self.comparison_filters()?;
        // Time first: the date an event word names takes the place of a value it was read as.
        let time = self.time_filters()?;
        self.negated_values();
        self.either_values();
        filters.append(&mut self.p.filters);
        filters.extend(time);
        filters.extend(std::mem::take(&mut self.anti).into_iter().map(|f| (usize::MAX, f)));
        filters.sort_by_key(|(pos, _)| *pos);
        if let Some((cue, percent)) = self.ratio_cue {
            let (ratio, shared) = split_ratio(cue, self.p.ratio_separator, percent, filters)?;
            self.q.ratio = Some(ratio);
            filters = shared;
        } else if self.p.ratio_separator.is_some() {
            return Err("a ratio separator without a ratio".into());
        }
        self.q.filters = filters.into_iter().map(|(_, f)| f).collect();
        self.one_value_per_column()?;
        // A joined table named next to a value is where the value is; named otherwise, its role
        // is unclear.
        let filtered_tables: Vec<usize> = self
            .q
            .filters
            .iter()
            .chain(self.q.ratio.iter().flat_map(|r| r.numerator.iter().chain(&r.denominator)))
            .map(|f| f.column().table)
            .collect();
        if self.context_entities.iter().any(|t| !filtered_tables.contains(t)) {
            return Err("the question names a related table without saying how it is used".into());
        }
        Ok(())
    }

    /// "not cancelled", "other than London", "except Paris": anything but the value that follows.
    fn negated_values(&mut self) {
        for k in 0..self.p.filters.len() {
            let (start, Filter::Value { column, value, mode: MatchMode::Exact }) = &self.p.filters[k] else { continue };
            let (start, column, value) = (*start, *column, value.clone());
            let before = |j: usize| start.checked_sub(j).filter(|&i| self.p.free(i)).map(|i| self.p.word(i));
            let len = match (before(2), before(1)) {
                (Some("not"), Some("in")) | (Some("other"), Some("than")) | (Some("is"), Some("not")) => 2,
                (_, Some("not" | "except" | "excluding")) => 1,
                _ => continue,
            };
            self.p.mark(start - len, start);
            self.p.filters[k].1 = Filter::Not { column, value };
        }
    }

    /// "in Paris or London", "in Paris, Berlin or London": values of one column listed with "or"
    /// before the last are either.
    fn either_values(&mut self) {
        let exact = |f: &Filter| match f {
            Filter::Value { column, value, mode: MatchMode::Exact } => Some((*column, value.clone())),
            _ => None,
        };
        self.p.filters.sort_by_key(|(at, _)| *at);
        let mut k = 0;
        while k < self.p.filters.len() {
            let Some((column, first)) = exact(&self.p.filters[k].1) else {
                k += 1;
                continue;
            };
            // Words between two values nothing claimed: none (a comma) or "or" before the last.
            let mut values = vec![first];
            let mut m = k;
            let mut or_at = None;
            while let Some((at, next)) = self.p.filters.get(m + 1).and_then(|(at, f)| Some((*at, exact(f)?))) {
                let gap: Vec<usize> = (self.p.filters[m].0..at).filter(|&i| self.p.free(i)).collect();
                match gap.as_slice() {
                    [] if next.0 == column && or_at.is_none() => {}
                    [i] if next.0 == column && self.p.word(*i) == "or" && or_at.is_none() => or_at = Some(*i),
                    _ => break,
                }
                values.push(next.1);
                m += 1;
            }
            // Only a list that "or" closes (side by side before it): "or" is in its last gap.
            if let Some(i) = or_at {
                self.p.mark(i, i + 1);
                self.p.filters[k].1 = Filter::AnyOf { column, values };
                self.p.filters.drain(k + 1..=m);
            }
            k += 1;
        }
    }

    /// Two values of one column ("customers in Paris and London") cannot both hold: the question
    /// means either, or each, which the offline engine does not build.
    fn one_value_per_column(&self) -> Result<(), Decline> {
        let named = |f: &Filter| match f {
            Filter::Value { column, value, .. } | Filter::Not { column, value } => Some((*column, value.clone())),
            Filter::AnyOf { column, values } => Some((*column, values.join(" or "))),
            _ => None,
        };
        for (i, a) in self.q.filters.iter().enumerate() {
            for b in &self.q.filters[i + 1..] {
                if let (Some((column, x)), Some((other, y))) = (named(a), named(b)) {
                    if column == other && x != y {
                        return Err(Decline::Ambiguous(format!(
                            "\"{x}\" and \"{y}\" are both values of {}: ask about each, or about either, in a question of its own",
                            self.p.vocab.column_label(column.table, column.column)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Comparisons attach to the numeric column just before them.
    fn comparison_filters(&mut self) -> Result<Vec<(usize, Filter)>, Decline> {
        let mut filters = Vec::new();
        for (pos, op, value, end) in std::mem::take(&mut self.p.comparisons) {
            if self.counts_rows(end) {
                // "with at least 10 reviews": groups kept by their row count.
                if self.q.having.replace((op, value)).is_some() {
                    return Err("two conditions on the number of rows".into());
                }
                self.p.explain_among(pos);
                continue;
            }
            let col = self
                .column_ends
                .iter()
                .filter(|(end, _)| *end == pos || (*end + 1 == pos && matches!(self.p.word(*end), "is" | "was" | "of")))
                .copied()
                .next_back();
            let Some((col_end, col)) = col.filter(|(_, c)| self.p.is_numeric(*c)) else {
                return Err("a comparison does not follow a numeric column".into());
            };
            self.loose.retain(|(end, _)| *end != col_end);
            if self.subject.column.is_some_and(|(_, end)| end == col_end) {
                self.subject.column = None;
            }
            filters.push((pos, Filter::Number { column: col, op, value }));
        }
        Ok(filters)
    }

    /// Whether the comparison ending at token `end` is followed by the base table's name
    /// ("at least 10 reviews"): a condition on how many rows each group has.
    fn counts_rows(&self, end: usize) -> bool {
        self.items.iter().any(|(start, _, item)| {
            *start == end
                && matches!(item, crate::offline::read::Item::Mention { targets, plural: true, .. } if self.names_base(targets))
        })
    }

    /// Time phrases on the table's date column (or its year column for whole years).
    fn time_filters(&mut self) -> Result<Vec<(usize, Filter)>, Decline> {
        let mut filters = Vec::new();
        for (pos, phrase) in std::mem::take(&mut self.p.time) {
            let filter = match phrase {
                TimePhrase::Year(year) => match self.p.year_column(self.base) {
                    Some(column) => Filter::Year { column, year, numeric: true },
                    None => Filter::Year { column: self.date_column()?, year, numeric: false },
                },
                TimePhrase::Years(years) => {
                    // Compared years: one group each.
                    let (column, numeric) = match self.p.year_column(self.base) {
                        Some(c) => (c, true),
                        None => (self.date_column()?, false),
                    };
                    let group = if numeric { GroupKey::Column(column) } else { GroupKey::Bucket(column, Unit::Year) };
                    if !self.q.groups.contains(&group) {
                        self.q.groups.push(group);
                    }
                    self.p.explain_comparing();
                    Filter::Years { column, years, numeric }
                }
                TimePhrase::Recent(n, unit) => Filter::Recent { column: self.date_column()?, n, unit },
                TimePhrase::Date(op, date) => Filter::Date { column: self.date_column()?, op, date },
            };
            let column = filter.column();
            self.loose.retain(|(_, c)| *c != column);
            if self.subject.column.is_some_and(|(c, _)| c == column) {
                self.subject.column = None;
            }
            filters.push((pos, filter));
        }
        Ok(filters)
    }

    fn date_column(&mut self) -> Result<ColRef, Decline> {
        let named = self.named_columns.clone();
        self.p.date_column(self.base, &named)
    }

    /// Columns named outside any cue are shown with the rows, unless a filter claimed them.
    pub(super) fn outputs(&mut self) {
        let time_columns: Vec<ColRef> = self.q.filters.iter().filter(|f| f.is_time()).map(Filter::column).collect();
        // "Return the id" where no column goes by that name: the key of the rows the question is
        // about (a joined table's rows it ranks, else its own).
        let focus = self.subject.entity.unwrap_or(self.base);
        if let Some(key) = self.p.vocab.view.key_column(focus) {
            for i in 0..self.p.toks.len() {
                if self.p.free(i) && matches!(self.p.word(i), "id" | "ids") {
                    self.p.mark(i, i + 1);
                    self.loose.push((i + 1, ColRef { table: focus, column: key }));
                }
            }
        }
        let loose = std::mem::take(&mut self.loose);
        for (_, c) in loose {
            let claimed = time_columns.contains(&c) && self.p.is_temporal(c);
            if !claimed && !self.q.outputs.contains(&c) && self.subject.column.map(|(s, _)| s) != Some(c) {
                self.q.outputs.push(c);
            }
        }
    }
}

/// Splits a ratio's filters, by where they are in the question, into its numerator (after the
/// cue), its denominator (after "to" / "out of", on the numerator's columns) and the filters both
/// share (time phrases, filters before the cue, other filters after the separator):
/// "ratio of cancelled to delivered orders in 2025".
fn split_ratio(
    cue: usize,
    separator: Option<usize>,
    percent: bool,
    filters: Vec<(usize, Filter)>,
) -> Result<(Ratio, Vec<(usize, Filter)>), Decline> {
    let (mut numerator, mut denominator, mut shared) = (Vec::new(), Vec::new(), Vec::new());
    let mut after = Vec::new();
    for (pos, f) in filters {
        if f.is_time() || pos < cue {
            shared.push((pos, f));
        } else if separator.is_none_or(|s| pos < s) {
            numerator.push(f);
        } else {
            after.push((pos, f));
        }
    }
    let columns = |fs: &[Filter]| {
        let mut cs: Vec<ColRef> = fs.iter().map(Filter::column).collect();
        cs.sort();
        cs.dedup();
        cs
    };
    let numerator_columns = columns(&numerator);
    for (pos, f) in after {
        if numerator_columns.contains(&f.column()) {
            denominator.push(f);
        } else {
            shared.push((pos, f));
        }
    }
    if numerator.is_empty() {
        return Err("a ratio without a condition to count".into());
    }
    if separator.is_none() && numerator.len() > 1 {
        return Err("a share with several conditions: which ones define the whole is unclear".into());
    }
    if !denominator.is_empty() && columns(&denominator) != numerator_columns {
        return Err("the two parts of a ratio are filtered differently".into());
    }
    shared.sort_by_key(|(pos, _)| *pos);
    Ok((Ratio { numerator, denominator, percent }, shared))
}
