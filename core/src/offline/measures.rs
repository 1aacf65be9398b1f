//! Phrases that stand for a measure rather than name one: "best-selling" (units sold), "average
//! order value" (what a row is worth, summed from its parts), "days between order and shipment"
//! (the time from one date column to another). Each is read before the base table is chosen, and
//! becomes cues and mentions the builder reads like any other.

use super::joins;
use super::query::{Agg, ColRef, Elapsed};
use super::read::{w, Cue, Item, Parser};
use super::schema::{Target, SALE_VERBS};
use crate::lang::stem;
use crate::lang::words::is_stop_word;
use crate::lang::Token as Tok;

/// Words of a date column's name that only say it holds a date.
const DATE_WORDS: &[&str] = &["at", "on", "date", "time", "timestamp", "ts", "dt", "datetime", "day", "when"];
/// Words a question about the time an event takes is framed with.
const HOW_LONG_FRAMING: &[&str] =
    &["does", "do", "did", "it", "take", "takes", "to", "on", "average", "typically", "usually", "generally"];
/// Words that ask for an average of the time taken.
const TYPICAL: &[&str] = &["average", "typically", "usually", "generally"];

impl Parser<'_> {
    /// "best-selling", "top-selling", "least sold": a ranking by units sold. The verb stands for the
    /// quantity columns (of order lines); a measure named elsewhere ("by revenue") replaces it.
    pub(super) fn sales_phrases(&mut self) {
        for i in 1..self.toks.len() {
            if !self.free(i) || !SALE_VERBS.contains(&w(&self.toks, i)) {
                continue;
            }
            let after_superlative = self
                .spans
                .iter()
                .any(|s| s.end == i && matches!(s.item, Item::Cue(Cue::Sup(_)) | Item::Cue(Cue::Top(..))));
            let after_top = self.free(i - 1) && w(&self.toks, i - 1) == "top";
            let targets = self.vocab.quantity_columns();
            if !(after_superlative || after_top) || targets.is_empty() {
                continue;
            }
            if after_top {
                self.push(i - 1, i, Item::Cue(Cue::Sup(true)));
            }
            self.push(i, i + 1, Item::Mention { targets, plural: false, start: i, end: i + 1 });
        }
        self.spans.sort_by_key(|s| s.start);
    }

    /// "average order value", "average value of an order", "average revenue per order": what a row
    /// of the table named is worth, averaged over its rows. A row is worth its own amount when it
    /// has one; else the sum of the value of the rows that are parts of it (order lines: many per
    /// order, each with an amount or a price and a quantity).
    pub(super) fn row_values(&mut self) {
        let mut k = 0;
        while k < self.spans.len() {
            if matches!(self.spans[k].item, Item::Cue(Cue::Agg(Agg::Avg))) {
                if let Some((start, end, table)) = self.row_value_phrase(k) {
                    self.replace_with_row_value(k, start, end, table);
                }
            }
            k += 1;
        }
    }

    /// The words after the average cue at span `k` that name a table's rows' value: (first token,
    /// end token, the table).
    fn row_value_phrase(&self, k: usize) -> Option<(usize, usize, usize)> {
        const VALUE_WORDS: &[&str] = &["value", "total", "worth", "amount", "spend", "spending"];
        const ARTICLES: &[&str] = &["a", "an", "one", "each", "every", "single"];
        let is_value = |i: usize| {
            let word = w(&self.toks, i);
            let alone = self.spans.iter().all(|s| s.end <= i || s.start > i || (s.start == i && s.end == i + 1));
            alone && (VALUE_WORDS.contains(&word) || self.vocab.is_money_word(word))
        };
        let table_at = |i: usize| {
            self.spans.iter().find_map(|s| match &s.item {
                Item::Mention { targets, .. } if s.start == i => {
                    let mut tables = targets.iter().filter_map(|t| match t {
                        Target::Table(x) => Some((*x, s.end)),
                        Target::Column(..) => None,
                    });
                    match (tables.next(), tables.next()) {
                        (Some(one), None) => Some(one),
                        _ => None,
                    }
                }
                _ => None,
            })
        };
        let after = self.spans[k].end;
        // "average order value"
        if let Some((table, end)) = table_at(after).filter(|(_, end)| is_value(*end)) {
            return Some((after, end + 1, table));
        }
        // "average value of an order", "average revenue per order"
        if !is_value(after) || !matches!(w(&self.toks, after + 1), "of" | "per" | "for") {
            return None;
        }
        let mut i = after + 2;
        while ARTICLES.contains(&w(&self.toks, i)) {
            i += 1;
        }
        let (table, end) = table_at(i)?;
        Some((after, end, table))
    }

    /// Puts the value of `table`'s rows in place of the words `start..end` after the average cue at
    /// span `k`; the words are left as they are when no one column holds it.
    fn replace_with_row_value(&mut self, k: usize, start: usize, end: usize, table: usize) {
        let Some((column, own)) = self.row_value(table) else { return };
        if !own {
            self.spans[k].item = Item::Cue(Cue::PerRow(table));
        }
        self.spans.retain(|s| s.end <= start || s.start >= end);
        let targets = vec![Target::Column(column.table, column.column)];
        self.push(start, end, Item::Mention { targets, plural: false, start, end });
        self.spans.sort_by_key(|s| s.start);
    }

    /// The column holding what a row of `table` is worth: its own one amount (true), else the one
    /// amount (or price of a price and a quantity) of the one table whose rows are parts of it.
    fn row_value(&self, table: usize) -> Option<(ColRef, bool)> {
        let view = self.vocab.view;
        let amounts = |t: usize| -> Vec<usize> {
            let key = view.key_column(t);
            view.columns(t).filter(|(c, e)| e.holds_money && Some(*c) != key).map(|(c, _)| c).collect()
        };
        if let [one] = amounts(table).as_slice() {
            return Some((ColRef { table, column: *one }, true));
        }
        let links = joins::Links::new(view);
        let parts: Vec<ColRef> = (0..self.catalog.tables.len())
            .filter(|&t| t != table)
            .filter(|&t| {
                // Many rows per row of `table`: the columns referring to it are not unique.
                links
                    .single_hop(t, table)
                    .is_some_and(|hop| hop.pairs.len() > 1 || !self.catalog.tables[t].columns[hop.pairs[0].0].unique)
            })
            .filter_map(|t| {
                let value = view.line_value(t).map(|(price, _)| price).or(match amounts(t).as_slice() {
                    [one] => Some(*one),
                    _ => None,
                })?;
                Some(ColRef { table: t, column: value })
            })
            .collect();
        match parts.as_slice() {
            [one] => Some((*one, false)),
            _ => None,
        }
    }

    /// "days between order and shipment", "time from ordering to delivery", "how long does shipping
    /// take on average": the time between two date columns of one table, each named by its event
    /// ("shipment" for `shipped_at`) or, for the row's own event, by the table ("order").
    pub(super) fn elapsed_phrases(&mut self) {
        let mut i = 1;
        while i < self.toks.len() {
            let found = match w(&self.toks, i) {
                "between" => self.elapsed_between(i, "and"),
                "from" => self.elapsed_between(i, "to"),
                "long" if w(&self.toks, i - 1) == "how" => self.how_long(i - 1),
                _ => None,
            };
            i = found.unwrap_or(i + 1);
        }
        self.spans.sort_by_key(|s| s.start);
    }

    /// "[number of] days between X and Y" with "between" at `i`: where reading goes on.
    fn elapsed_between(&mut self, i: usize, close: &str) -> Option<usize> {
        let unit = Elapsed::from_word(w(&self.toks, i - 1))?;
        let start =
            if i >= 3 && w(&self.toks, i - 3) == "number" && w(&self.toks, i - 2) == "of" { i - 3 } else { i - 1 };
        let close_at = (i + 1..(i + 5).min(self.toks.len())).find(|&j| w(&self.toks, j) == close)?;
        let [from] = self.content_words(i + 1, close_at)[..] else { return None };
        let to = (close_at + 1..self.toks.len()).find(|&j| !is_article(w(&self.toks, j)))?;
        let (table, from_column, to_column) = self.elapsed_columns(from, to)?;
        let end = to + 1;
        if !self.claimable(start, end) {
            return None;
        }
        self.spans.retain(|s| s.end <= start || s.start >= end);
        self.push(start, i + 1, Item::Cue(Cue::Elapsed(unit)));
        let targets = vec![Target::Column(table, from_column), Target::Column(table, to_column)];
        self.push(i + 1, end, Item::Mention { targets, plural: false, start: i + 1, end });
        Some(end)
    }

    /// "how long does shipping take on average" with "how" at `i`: from the row's own event to the
    /// one the question names, averaged; where reading goes on.
    fn how_long(&mut self, i: usize) -> Option<usize> {
        let end = (i..self.toks.len()).find(|&j| self.toks[j] == Tok::Break).unwrap_or(self.toks.len());
        if !(i + 2..end).any(|j| TYPICAL.contains(&w(&self.toks, j))) {
            return None;
        }
        let words: Vec<usize> = (i + 2..end)
            .filter(|&j| self.toks[j].word().is_some_and(|x| !is_stop_word(x) && !HOW_LONG_FRAMING.contains(&x)))
            .collect();
        let [event] = words[..] else { return None };
        let mut found = (0..self.catalog.tables.len()).filter_map(|t| {
            let own = self.own_event_column(t)?;
            let named = self.event_column(t, w(&self.toks, event))?;
            (own != named).then_some((t, own, named))
        });
        let (table, own, named) = found.next().filter(|_| found.next().is_none())?;
        if !self.claimable(i, i + 2) || !self.claimable(event, event + 1) {
            return None;
        }
        let framing: Vec<usize> = (i + 2..end).filter(|&j| HOW_LONG_FRAMING.contains(&w(&self.toks, j))).collect();
        self.spans.retain(|s| !framing.contains(&s.start) && (s.end <= event || s.start > event));
        for j in framing {
            self.mark(j, j + 1);
        }
        self.push(i, i + 1, Item::Cue(Cue::Agg(Agg::Avg)));
        self.push(i + 1, i + 2, Item::Cue(Cue::Elapsed(Elapsed::Days)));
        let targets = vec![Target::Column(table, own), Target::Column(table, named)];
        self.push(event, event + 1, Item::Mention { targets, plural: false, start: event, end: event + 1 });
        Some(end)
    }

    /// Tokens `start..end` are words no time phrase or comparison has claimed.
    fn claimable(&self, start: usize, end: usize) -> bool {
        (start..end).all(|j| self.free(j) || self.spans.iter().any(|s| s.start <= j && j < s.end))
    }

    /// The words of `start..end` other than articles.
    fn content_words(&self, start: usize, end: usize) -> Vec<usize> {
        (start..end).filter(|&j| !is_article(w(&self.toks, j))).collect()
    }

    /// The one table whose date columns the words at `from` and `to` name (different ones).
    fn elapsed_columns(&self, from: usize, to: usize) -> Option<(usize, usize, usize)> {
        let (from, to) = (w(&self.toks, from), w(&self.toks, to));
        let mut found = (0..self.catalog.tables.len()).filter_map(|t| {
            let a = self.event_column(t, from)?;
            let b = self.event_column(t, to)?;
            (a != b).then_some((t, a, b))
        });
        found.next().filter(|_| found.next().is_none())
    }

    /// The date column of table `t` a word names by its event ("shipment", "shipped" for
    /// `shipped_at`), or by the table's own name for the row's own event ("order" for `ordered_at`,
    /// or `created_at`).
    fn event_column(&self, t: usize, word: &str) -> Option<usize> {
        if word.is_empty() || is_stop_word(word) {
            return None;
        }
        let root = event_root(word);
        let dates: Vec<usize> = self.vocab.view.columns(t).map(|(c, _)| c).filter(|&c| self.is_date(t, c)).collect();
        let named: Vec<usize> =
            dates.iter().copied().filter(|&c| self.event_words(t, c).iter().any(|x| event_root(x) == root)).collect();
        match named.as_slice() {
            [one] => Some(*one),
            [] if self.vocab.view.table_words(t).iter().any(|x| stem(x) == stem(word)) => self.own_event_column(t),
            _ => None,
        }
    }

    /// The date column of a row's own event: named after the table (`ordered_at` in `orders`), or
    /// its creation.
    fn own_event_column(&self, t: usize) -> Option<usize> {
        let table_roots: Vec<String> = self.vocab.view.table_words(t).iter().map(|x| event_root(x)).collect();
        let dates = self.vocab.view.columns(t).map(|(c, _)| c).filter(|&c| self.is_date(t, c));
        let own: Vec<usize> = dates
            .filter(|&c| {
                self.event_words(t, c).iter().any(|x| {
                    let root = event_root(x);
                    table_roots.contains(&root) || root == "creat"
                })
            })
            .collect();
        match own.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    fn is_date(&self, t: usize, c: usize) -> bool {
        self.catalog.tables[t].columns.get(c).is_some_and(|c| c.is_temporal())
    }

    /// The words of a date column's name that say which event it records.
    fn event_words(&self, t: usize, c: usize) -> Vec<&str> {
        self.vocab.view.column_words(t, c).into_iter().filter(|x| !DATE_WORDS.contains(x)).collect()
    }
}

fn is_article(word: &str) -> bool {
    matches!(word, "the" | "a" | "an" | "its" | "their" | "each")
}

/// The root an event goes by in its noun, verb and participle: "shipment", "shipping", "shipped"
/// -> ship; "delivery", "delivered" -> deliver; "ordering", "ordered", "orders" -> order.
fn event_root(word: &str) -> String {
    let mut w = word.to_lowercase();
    if let Some(stem) = w.strip_suffix("ies") {
        w = format!("{stem}y");
    } else if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w.pop();
    }
    for (suffix, replace) in [("ment", ""), ("ing", ""), ("ion", ""), ("ed", ""), ("al", ""), ("ery", "er")] {
        if let Some(stem) = w.strip_suffix(suffix) {
            if stem.len() >= 3 {
                w = format!("{stem}{replace}");
                break;
            }
        }
    }
    if w.len() >= 4 && w.ends_with('e') {
        w.pop();
    }
    let bytes = w.as_bytes();
    let n = bytes.len();
    if n >= 4 && bytes[n - 1] == bytes[n - 2] && !b"aeiou".contains(&bytes[n - 1]) {
        w.pop();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::event_root;

    #[test]
    fn events_meet_at_their_root() {
        for (a, b) in [
            ("shipment", "shipped"),
            ("shipping", "shipped"),
            ("delivery", "delivered"),
            ("deliveries", "delivered"),
            ("ordering", "ordered"),
            ("orders", "ordered"),
            ("creation", "created"),
            ("arrival", "arrived"),
            ("placement", "placed"),
        ] {
            assert_eq!(event_root(a), event_root(b), "{a} / {b}");
        }
        assert_ne!(event_root("shipped"), event_root("signed"));
        assert_ne!(event_root("ordered"), event_root("delivered"));
    }
}
