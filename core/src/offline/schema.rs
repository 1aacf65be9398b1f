//! What the question's words can name among the tables and columns the caller may read: the
//! schema index's terms seen through the caller's view, plus money words ("revenue", "sales")
//! standing for the amount columns and quantity words ("units") standing for the quantity columns
//! when the schema does not use the word itself.

use std::cell::OnceCell;

use crate::catalog::{Catalog, Table};
use crate::lang::words::within_one_edit;
use crate::lang::{stem, View};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    Table(usize),
    Column(usize, usize),
}

/// Question words that mean an amount of money.
const MONEY_WORDS: &[&str] = &[
    "revenue", "revenues", "sales", "income", "money", "spent", "spend", "spending", "earned", "earnings", "turnover",
    "takings",
];

/// Question words that mean a number of units (of what order lines hold).
const QUANTITY_WORDS: &[&str] = &["units", "quantity", "quantities", "qty"];
/// Words of a column name that say it holds a number of units.
const QUANTITY_COLUMN_WORDS: &[&str] = &["quantity", "qty", "units"];
/// Verbs of selling: "best-selling", "units sold". They say what a quantity or an amount counts,
/// never which rows count.
pub(crate) const SALE_VERBS: &[&str] = &["sold", "selling", "sells", "sell"];

pub(crate) struct Vocab<'v, 'a> {
    pub(crate) view: &'v View<'a>,
    /// Keys long enough for typo matching, found on first need.
    typo_keys: OnceCell<Vec<String>>,
}

impl<'v, 'a> Vocab<'v, 'a> {
    pub(crate) fn new(view: &'v View<'a>) -> Self {
        Vocab { view, typo_keys: OnceCell::new() }
    }

    pub(crate) fn catalog(&self) -> &'a Catalog {
        self.view.catalog
    }

    fn targets(&self, key: &str) -> Vec<Target> {
        self.view
            .lookup(key)
            .into_iter()
            .map(|(t, c)| match c {
                None => Target::Table(t),
                Some(c) => Target::Column(t, c),
            })
            .collect()
    }

    /// What the stems of a run of question words name, if anything. A quantity word ("units")
    /// also stands for every quantity column, named so or not.
    pub(crate) fn lookup(&self, stems: &[&str]) -> Option<Vec<Target>> {
        let k: String = stems.concat();
        let mut found = self.targets(&k);
        if let [one] = stems {
            if self.is_money_stem(one) {
                found = self.money_columns();
            } else if QUANTITY_WORDS.iter().any(|w| stem(w) == *one) {
                for t in self.quantity_columns() {
                    if !found.contains(&t) {
                        found.push(t);
                    }
                }
            }
        }
        (!found.is_empty()).then_some(found)
    }

    /// A schema term one edit away from a single (long) question word.
    pub(crate) fn lookup_typo(&self, stem: &str) -> Option<Vec<Target>> {
        if stem.chars().count() < 6 {
            return None;
        }
        let keys = self.typo_keys.get_or_init(|| self.view.keys_at_least(6).into_iter().map(String::from).collect());
        let mut found = keys.iter().filter(|k| within_one_edit(k, stem));
        let first = found.next()?;
        if found.next().is_some() {
            return None;
        }
        Some(self.targets(first))
    }

    /// Whether a question word stands for a sum: money the schema does not name itself, or units.
    pub(crate) fn is_summed_word(&self, word: &str) -> bool {
        let s = stem(word);
        self.is_money_stem(&s) || QUANTITY_WORDS.iter().any(|w| stem(w) == s)
    }

    /// The numeric columns that hold numbers of units (`quantity`, `qty`, `units`), other than keys.
    pub(crate) fn quantity_columns(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for t in 0..self.catalog().tables.len() {
            for (c, col) in self.view.columns(t) {
                let words = self.view.column_words(t, c);
                let numeric = self.catalog().tables[t].columns.get(c).is_some_and(|x| x.is_numeric());
                if numeric
                    && !col.key_like
                    && !col.holds_money
                    && words.iter().any(|w| QUANTITY_COLUMN_WORDS.contains(w))
                    && !words.iter().any(|w| matches!(*w, "id" | "price" | "cost"))
                {
                    out.push(Target::Column(t, c));
                }
            }
        }
        out
    }

    fn is_money_stem(&self, s: &str) -> bool {
        MONEY_WORDS.iter().any(|w| stem(w) == s) && self.targets(s).is_empty()
    }

    /// Whether a question word is a money word standing for amount columns (the schema does not
    /// use the word itself).
    pub(crate) fn is_money_word(&self, word: &str) -> bool {
        self.is_money_stem(&stem(word))
    }

    /// The price columns of tables whose rows are worth price times quantity (order lines).
    pub(crate) fn line_values(&self) -> Vec<Target> {
        (0..self.catalog().tables.len())
            .filter_map(|t| self.view.line_value(t).map(|(p, _)| Target::Column(t, p)))
            .collect()
    }

    /// The numeric columns that hold amounts of money, other than keys.
    fn money_columns(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for t in 0..self.catalog().tables.len() {
            let key = self.view.key_column(t);
            for (c, col) in self.view.columns(t) {
                if col.holds_money && Some(c) != key {
                    out.push(Target::Column(t, c));
                }
            }
        }
        out
    }

    pub(crate) fn comment_has(&self, table: usize, column: usize, stem: &str) -> bool {
        self.view.comment_has(table, column, stem)
    }

    /// The words a column goes by in answers ("food type").
    pub(crate) fn column_label(&self, table: usize, column: usize) -> String {
        self.view.column_label(table, column)
    }

    pub(crate) fn table_label(&self, table: usize) -> String {
        self.view.table_label(table)
    }

    /// The words of a column's name as it goes by (prefix removed).
    pub(crate) fn column_words(&self, table: usize, column: usize) -> Vec<String> {
        self.view.column_words(table, column).into_iter().map(String::from).collect()
    }
}

/// The column that names a table's rows (`name`, `title`, `<table>_name`), if readable.
pub(crate) fn label_column(vocab: &Vocab, ti: usize, _table: &Table) -> Option<usize> {
    vocab.view.label_column(ti)
}

/// The column that identifies a table's rows, if readable.
pub(crate) fn key_column(vocab: &Vocab, ti: usize, _table: &Table) -> Option<usize> {
    vocab.view.key_column(ti)
}
