//! From the question's items (cues, mentions) to a `Query`. The items are walked once; each
//! construct has its own handler (measures, groups, order and top N, filters and time, shares,
//! periods, "never", HAVING), and the shape of the answer is settled at the end. A handler that
//! cannot read its construct declines with a reason.

mod filter;
mod group;
mod measure;
mod never;
mod order;
mod shape;

use super::query::{ColRef, OrderKey, Query};
use super::read::{Cue, Item, Parser};
use super::schema::Target;
use super::{Decline, Parsed};

/// What the question is about: the rows it counts or lists.
#[derive(Debug, Default)]
struct Subject {
    /// The base table named outright: (token, plural).
    table: Option<(usize, bool)>,
    /// A column whose values are what is listed or grouped ("which cities ..."), and the token
    /// after its mention.
    column: Option<(ColRef, usize)>,
    /// A joined table whose rows are what the question ranks or groups ("top 5 customers by ...").
    entity: Option<usize>,
    plural: bool,
}

/// Words about the order of the answer, settled once every item is read.
#[derive(Debug, Default)]
struct OrderWords {
    direction: Option<bool>,
    alphabetical: bool,
    /// A superlative whose key is named elsewhere (or by its adjective): descending?
    superlative: Option<bool>,
    top: Option<(bool, u64)>,
}

pub(super) struct Build<'a> {
    p: Parser<'a>,
    base: usize,
    items: Vec<(usize, usize, Item)>,
    /// Words standing for a sum among the items (money, units): the one column each stands for.
    summed: Vec<Option<ColRef>>,
    q: Query,
    subject: Subject,
    order: OrderWords,
    /// Joined tables named only to say where a filter's value is ("orders from customers in London").
    context_entities: Vec<usize>,
    ratio_cue: Option<(usize, bool)>,
    /// Rows that must not exist ("never").
    anti: Vec<super::query::Filter>,
    named_columns: Vec<ColRef>,
    /// Columns right before a comparison: (end token, column).
    column_ends: Vec<(usize, ColRef)>,
    /// Columns named outside any cue, by the token after them: shown as outputs unless a
    /// comparison or time phrase claims them.
    loose: Vec<(usize, ColRef)>,
}

pub(super) fn build(mut p: Parser<'_>, base: usize) -> Result<Parsed, Decline> {
    p.spans.sort_by_key(|s| s.start);
    let items: Vec<(usize, usize, Item)> = p.spans.iter().map(|s| (s.start, s.end, s.item.clone())).collect();
    let summed = (0..items.len()).map(|k| p.summed_column(&items, k).transpose()).collect::<Result<_, _>>()?;
    let mut q = Query::new(base);
    q.key = p.vocab.view.key_column(base).map(|column| ColRef { table: base, column });
    let mut b = Build {
        p,
        base,
        items,
        summed,
        q,
        subject: Subject { plural: true, ..Subject::default() },
        order: OrderWords::default(),
        context_entities: Vec::new(),
        ratio_cue: None,
        anti: Vec::new(),
        named_columns: Vec::new(),
        column_ends: Vec::new(),
        loose: Vec::new(),
    };
    b.read_items()?;
    b.never()?;
    b.bucket_adjectives()?;
    b.filters()?;
    b.outputs();
    b.everything_explained()?;
    b.shape()?;
    b.q.joins = b.p.joins_for(&b.q)?;
    Ok(Parsed { query: b.q })
}

impl Build<'_> {
    /// Walks the items, each construct's handler reading its own and saying where to go on.
    fn read_items(&mut self) -> Result<(), Decline> {
        let mut k = 0;
        while k < self.items.len() {
            k = match self.items[k].2.clone() {
                Item::Cue(Cue::Count) => self.count(k)?,
                Item::Cue(Cue::PerRow(table)) => self.per_row(k, table)?,
                Item::Cue(Cue::Common(desc)) => self.common(k, desc)?,
                Item::Cue(Cue::Elapsed(_)) => {
                    return Err("a time between two dates is read only as an average, shortest or longest".into())
                }
                Item::Cue(Cue::Agg(agg)) => self.aggregate(k, agg)?,
                Item::Cue(Cue::Sup(desc)) => self.superlative(k, desc)?,
                Item::Cue(Cue::Top(desc, n)) => {
                    self.order.top = Some((desc, n));
                    k + 1
                }
                Item::Cue(Cue::Each) => self.group(k, false)?,
                Item::Cue(Cue::By) => self.group(k, true)?,
                Item::Cue(Cue::OrderBy) => self.order_by(k)?,
                Item::Cue(Cue::Dir(desc)) => {
                    self.order.direction = Some(desc);
                    k + 1
                }
                Item::Cue(Cue::Alphabetical) => {
                    self.order.alphabetical = true;
                    k + 1
                }
                Item::Cue(Cue::Distinct) => {
                    self.q.distinct = true;
                    k + 1
                }
                Item::Cue(Cue::Range(desc, until)) => self.range(k, desc, until),
                Item::Cue(Cue::Ratio(percent)) => {
                    self.ratio_cue = Some((self.items[k].0, percent));
                    k + 1
                }
                // Read with the mention set aside after it (see `never`).
                Item::Cue(Cue::Never) => k + 1,
                Item::Mention { .. } => self.mention(k)?,
            };
        }
        Ok(())
    }

    /// The targets and plural of the mention at item `k`, if it is one.
    fn mention_at(&self, k: usize) -> Option<(Vec<Target>, bool)> {
        match self.items.get(k) {
            Some((_, _, Item::Mention { targets, plural, .. })) => Some((targets.clone(), *plural)),
            _ => None,
        }
    }

    fn names_base(&self, targets: &[Target]) -> bool {
        targets.contains(&Target::Table(self.base))
    }

    /// A table or column named outside any cue: the subject, a joined table giving context, the
    /// sum a money or quantity word stands for, or a column shown with the rows.
    fn mention(&mut self, k: usize) -> Result<usize, Decline> {
        let (_, end, _) = self.items[k];
        let (targets, plural) = self.mention_at(k).expect("a mention");
        // Once a joined table's rows are what the question ranks, its columns are theirs ("Return
        // the id and name" of the customers).
        let of_entity = self.subject.entity.and_then(|t| {
            targets.iter().find_map(|x| match x {
                Target::Column(ti, ci) if *ti == t => Some(ColRef { table: t, column: *ci }),
                _ => None,
            })
        });
        let col = of_entity.or_else(|| self.p.column_of(self.base, &targets));
        let is_table = self.names_base(&targets);
        let entity = if col.is_none() && !is_table { self.p.entity_of(self.base, &targets) } else { None };
        let nothing_yet = self.subject.column.is_none()
            && self.subject.table.is_none()
            && self.q.measures.is_empty()
            && self.loose.is_empty();
        // Only a measure the rows are ranked by may come before them ("the 3 best-selling products").
        let ranked_only = self.subject.column.is_none()
            && self.subject.table.is_none()
            && self.loose.is_empty()
            && self.q.groups.is_empty()
            && matches!(self.q.order, Some((OrderKey::Measure(_), _)));
        if let Some(c) = self.summed[k] {
            // "revenue per month": a sum.
            if c.table != self.base {
                return Err("an amount on a joined table would be counted once per row".into());
            }
            let m = self.sum_measure(c);
            self.named_columns.push(c);
            if let Some((_, _, Item::Cue(Cue::Top(desc, _)))) = k.checked_sub(1).map(|j| &self.items[j]) {
                // "the top 5 selling products": ranked by it.
                self.q.order = Some((OrderKey::Measure(m), *desc));
            }
        } else if let Some(t) = entity {
            if self.subject.entity.is_none() && (nothing_yet || ranked_only) {
                self.subject.entity = Some(t);
                self.subject.plural = plural;
            } else {
                self.context_entities.push(t);
            }
        } else if is_table && self.subject.table.is_none() {
            self.subject.table = Some((self.items[k].0, plural));
            // "the most common status of orders" asks for one status, whatever the table's number.
            if self.subject.column.is_none() && self.subject.entity.is_none() {
                self.subject.plural = plural;
            }
        } else if let Some(c) = col {
            self.column_ends.push((end, c));
            self.named_columns.push(c);
            if nothing_yet {
                self.subject.column = Some((c, end));
                self.subject.plural = plural;
            } else {
                self.loose.push((end, c));
            }
        } else if !is_table {
            return Err("a word names something outside the tables the question reaches".into());
        }
        Ok(k + 1)
    }

    /// Every meaningful word is accounted for, or the question declines naming the first that is not.
    fn everything_explained(&mut self) -> Result<(), Decline> {
        self.explain_sales_verbs();
        let used: Vec<ColRef> = self.named_columns.clone();
        self.p.explain_by_comments(&self.q, &used);
        match self.p.first_unexplained() {
            Some(word) => Err(Decline::Unknown(word)),
            None => Ok(()),
        }
    }
}
