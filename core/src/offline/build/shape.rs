//! The shape of the answer, settled once every item is read: a share of two counts, a measure
//! per group (with the subject column or a joined table's rows as the groups), one row of
//! aggregates, or a list of rows.

use super::Build;
use crate::offline::query::{Agg, ColRef, GroupKey, Measure, OrderKey};
use crate::offline::Decline;

impl Build<'_> {
    pub(super) fn shape(&mut self) -> Result<(), Decline> {
        if self.q.ratio.is_some() {
            self.ratio_shape()?;
        }
        let label = self.p.vocab.view.label_column(self.base).map(|column| ColRef { table: self.base, column });
        self.settle_order(label)?;
        if let Some(t) = self.subject.entity {
            if self.q.measures.is_empty() && self.q.groups.is_empty() {
                return self.related_rows(t);
            }
            // "top 5 customers by number of orders": the joined table's rows are the groups.
            let g = self.p.entity_group(t)?;
            if !self.q.groups.contains(&g) {
                self.q.groups.insert(0, g);
            }
        }
        if !self.q.measures.is_empty() || !self.q.groups.is_empty() {
            self.grouped_shape()?;
        } else {
            self.list_shape(label)?;
        }
        if let (Some((OrderKey::Column(c), _)), true) = (self.q.order, self.q.is_grouped()) {
            let grouped = self.q.groups.iter().any(|g| {
                matches!(g, GroupKey::Column(x) | GroupKey::Bucket(x, _) | GroupKey::Entity { label: x, .. } if *x == c)
            });
            if !grouped {
                return Err("ordering groups by a column that is not grouped".into());
            }
        }
        Ok(())
    }

    /// "Which customers placed orders in 2025?": the joined table's rows the base table's rows
    /// (as filtered) refer to, each once.
    fn related_rows(&mut self, t: usize) -> Result<(), Decline> {
        let GroupKey::Entity { label, key } = self.p.entity_group(t)? else {
            return Err("a related table's rows without a name and a key to list them by".into());
        };
        let mut outputs = vec![label, key];
        for c in &self.q.outputs {
            if c.table != t {
                return Err("a column next to a related table's rows that is not theirs".into());
            }
            if !outputs.contains(c) {
                outputs.push(*c);
            }
        }
        if let Some((OrderKey::Column(c), _)) = self.q.order {
            if !outputs.contains(&c) {
                return Err("a related table's rows ordered by what they do not show".into());
            }
        }
        self.q.outputs = outputs;
        self.q.distinct = true;
        self.q.key = Some(key);
        self.q.rows_of = Some(t);
        Ok(())
    }

    fn ratio_shape(&mut self) -> Result<(), Decline> {
        let q = &mut self.q;
        if q.measures.iter().any(|m| *m != Measure::rows())
            || q.order.is_some()
            || self.order.top.is_some()
            || self.subject.table.is_none()
            || !q.outputs.is_empty()
        {
            return Err("a ratio of counts mixed with other measures or an order".into());
        }
        q.measures = vec![Measure::of(Agg::Ratio, None)];
        Ok(())
    }

    /// A measure per group, or one row of aggregates.
    fn grouped_shape(&mut self) -> Result<(), Decline> {
        let subject_column = self.subject.column.map(|(c, _)| c);
        let q = &mut self.q;
        if let Some(c) = subject_column {
            // "which street has the most restaurants", "top 5 countries by number of customers"
            if !q.groups.contains(&GroupKey::Column(c)) {
                q.groups.insert(0, GroupKey::Column(c));
            }
        }
        // Columns of the ranked table's rows are shown with them (one value per row).
        let entity = self.subject.entity;
        for c in q.outputs.clone() {
            let shown_already = q.groups.iter().any(|g| matches!(g, GroupKey::Entity { label, .. } if *label == c));
            if Some(c.table) == entity && !shown_already && !q.groups.contains(&GroupKey::Column(c)) {
                q.groups.push(GroupKey::Column(c));
            }
        }
        q.outputs.retain(|c| !q.groups.iter().any(|g| matches!(g, GroupKey::Entity { label, .. } if label == c)));
        // Columns asked for again ("Return the status and number of ...") must be groups.
        if q.outputs.iter().any(|c| !q.groups.contains(&GroupKey::Column(*c))) {
            return Err("the question asks for a column next to an aggregate that is not grouped".into());
        }
        if q.measures.is_empty() {
            // "orders per month": rows counted per group.
            if self.subject.table.is_none() || !q.outputs.is_empty() {
                return Err("a grouping without what to count or aggregate".into());
            }
            q.measures.push(Measure::rows());
        }
        if q.groups.is_empty() {
            if q.order.is_some() || q.limit.is_some() {
                return Err("an order or limit on a single aggregate".into());
            }
            if self.subject.table.is_none() && q.measures.iter().all(|m| m.column.is_none()) {
                return Err("cannot tell what to count".into());
            }
            return Ok(());
        }
        let year = self.p.year_column(self.base).map(GroupKey::Column);
        let time_like = q.groups.iter().all(|g| matches!(g, GroupKey::Bucket(..)) || Some(*g) == year);
        if q.order.is_none() && !time_like {
            q.order = Some((OrderKey::Measure(0), true));
        }
        // "Which city has the most restaurants?" asks for one group.
        let singular_subject =
            (subject_column.is_some() || self.subject.entity.is_some()) && !self.subject.plural && q.order.is_some();
        if q.limit.is_none() && singular_subject {
            q.limit = Some(1);
        }
        Ok(())
    }

    /// A list of rows: the subject column's values, or the rows' label (and key), with the
    /// columns the question names.
    fn list_shape(&mut self, label: Option<ColRef>) -> Result<(), Decline> {
        let subject_column = self.subject.column.map(|(c, _)| c);
        let mut outputs = Vec::new();
        if let Some(c) = subject_column {
            outputs.push(c);
            // "which cities ..." lists each city once; "names of restaurants" lists rows.
            self.q.distinct = Some(c) != label;
        }
        if subject_column.is_none() && self.q.outputs.is_empty() {
            let name = &self.p.catalog.tables[self.base].name;
            let l = label.ok_or_else(|| format!("{name} has no name column to list"))?;
            outputs.push(l);
            if let Some(key) = self.p.vocab.view.key_column(self.base) {
                if !self.q.distinct {
                    outputs.push(ColRef { table: self.base, column: key });
                }
            }
        }
        outputs.extend(self.q.outputs.iter().copied());
        if let Some((OrderKey::Column(c), _)) = self.q.order {
            if !outputs.contains(&c) {
                outputs.push(c);
            }
            if self.q.limit.is_none() && !self.subject.plural {
                self.q.limit = Some(1);
            }
        }
        if self.subject.table.is_none() && subject_column.is_none() {
            return Err("the question does not say which rows to list".into());
        }
        outputs.dedup();
        self.q.outputs = outputs;
        Ok(())
    }
}
