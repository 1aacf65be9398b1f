//! What the question's words can name in the catalog: tables and columns under their names, their
//! plural and reworded forms ("food_type" is also "type of food"), and without the prefixes some
//! schemas put on every name (`sbcustname` in `sbcustomer` is "name").

use crate::catalog::identifier_words;
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use crate::catalog::{Catalog, Column, Table};

use super::words::stem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    Table(usize),
    Column(usize, usize),
}

/// Trailing words that only say a column holds a name or a count of something.
const GENERIC_SUFFIXES: &[&str] = &["name", "num", "number", "nbr", "no", "cnt", "count"];
const COUNT_SUFFIXES: &[&str] = &["num", "number", "nbr", "no", "cnt", "count"];

/// Question words that mean an amount of money.
const MONEY_WORDS: &[&str] = &[
    "revenue", "revenues", "sales", "income", "money", "spent", "spend", "spending", "earned", "earnings", "turnover",
    "takings",
];
/// Words of a column name that say it holds an amount of money (also at the end of a word: `sbtxamount`).
const MONEY_COLUMN_WORDS: &[&str] = &["amount", "revenue", "sales", "income", "turnover"];
/// Words of a column name that say it holds something else.
const NOT_MONEY_WORDS: &[&str] =
    &["count", "number", "num", "qty", "quantity", "id", "rate", "pct", "percent", "ratio"];

pub(crate) struct Vocab {
    /// Term key (the stems of its words, concatenated) -> what it names.
    terms: HashMap<String, Vec<Target>>,
    /// Single-word keys long enough for typo matching.
    typo_keys: Vec<String>,
    /// The words of each column's name after prefixes are removed, by table then column.
    pub(crate) column_words: Vec<Vec<Vec<String>>>,
    /// Each table's name in words.
    pub(crate) table_words: Vec<Vec<String>>,
    /// Stems of each column's comment.
    comment_stems: Vec<Vec<HashSet<String>>>,
    /// Money words that name amount columns here (the schema does not use them itself).
    money_keys: Vec<String>,
}

pub(crate) fn key<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| stem(w.as_ref())).collect()
}

/// The longest prefix shared by all names when removing it leaves at least `min_rest` characters
/// of each (e.g. `sb` of `sbcustomer`, `sbticker`).
fn shared_prefix(names: &[String], min_rest: usize) -> usize {
    if names.len() < 2 {
        return 0;
    }
    let first = names[0].as_bytes();
    let mut len = first.len();
    for n in &names[1..] {
        len = len.min(first.iter().zip(n.as_bytes()).take_while(|(a, b)| a == b).count());
    }
    while len > 0 && !names[0].is_char_boundary(len) {
        len -= 1;
    }
    if len < 2 || names.iter().any(|n| n.len() < len + min_rest) {
        0
    } else {
        len
    }
}

fn strip_prefix_words(name: &str, prefix: usize) -> Vec<String> {
    identifier_words(name.get(prefix..).unwrap_or(name))
}

thread_local! {
    /// The vocabulary of the catalog seen last, by a fingerprint of what it is built from:
    /// building it for a catalog of hundreds of tables costs milliseconds, hashing it much less.
    static LAST: RefCell<Option<(u64, Rc<Vocab>)>> = const { RefCell::new(None) };
}

/// A hash of everything the vocabulary reads from the catalog.
fn fingerprint(catalog: &Catalog) -> u64 {
    let mut h = DefaultHasher::new();
    for t in &catalog.tables {
        (&t.schema, &t.name, &t.primary_key).hash(&mut h);
        for c in &t.columns {
            (&c.name, c.category, &c.comment).hash(&mut h);
        }
    }
    h.finish()
}

impl Vocab {
    /// The vocabulary of a catalog, reused while the catalog stays the same.
    pub(crate) fn cached(catalog: &Catalog) -> Rc<Vocab> {
        let print = fingerprint(catalog);
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some((p, vocab)) if *p == print => Rc::clone(vocab),
                _ => {
                    let vocab = Rc::new(Vocab::new(catalog));
                    *last = Some((print, Rc::clone(&vocab)));
                    vocab
                }
            }
        })
    }

    pub(crate) fn new(catalog: &Catalog) -> Vocab {
        let mut vocab = Vocab {
            terms: HashMap::new(),
            typo_keys: Vec::new(),
            column_words: Vec::new(),
            table_words: Vec::new(),
            comment_stems: Vec::new(),
            money_keys: Vec::new(),
        };
        let mut schema_prefix: HashMap<&str, usize> = HashMap::new();
        for schema in catalog.tables.iter().map(|t| t.schema.as_str()).collect::<HashSet<_>>() {
            let names: Vec<String> =
                catalog.tables.iter().filter(|t| t.schema == schema).map(|t| t.name.to_lowercase()).collect();
            schema_prefix.insert(schema, shared_prefix(&names, 3));
        }
        for (ti, table) in catalog.tables.iter().enumerate() {
            let tprefix = schema_prefix.get(table.schema.as_str()).copied().unwrap_or(0);
            let full = identifier_words(&table.name);
            let stripped = strip_prefix_words(&table.name.to_lowercase(), tprefix);
            vocab.add(&full, Target::Table(ti));
            vocab.add(&stripped, Target::Table(ti));
            let twords = stripped.clone();
            vocab.table_words.push(twords.clone());

            let col_names: Vec<String> = table.columns.iter().map(|c| c.name.to_lowercase()).collect();
            let cprefix = shared_prefix(&col_names, 2);
            let mut words_of_table = Vec::new();
            let mut comments = Vec::new();
            for (ci, col) in table.columns.iter().enumerate() {
                let target = Target::Column(ti, ci);
                let lower = col.name.to_lowercase();
                vocab.add(&identifier_words(&col.name), target);
                vocab.add(&strip_prefix_words(&lower, tprefix), target);
                let words = strip_prefix_words(&lower, cprefix);
                vocab.add(&words, target);
                for variant in column_variants(&words, &twords) {
                    vocab.add(&variant, target);
                }
                words_of_table.push(words);
                comments.push(
                    col.comment
                        .as_deref()
                        .unwrap_or("")
                        .split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(stem)
                        .collect(),
                );
            }
            vocab.column_words.push(words_of_table);
            vocab.comment_stems.push(comments);
        }
        vocab.add_money_words(catalog);
        vocab.typo_keys = vocab.terms.keys().filter(|k| k.chars().count() >= 6).cloned().collect();
        vocab.typo_keys.sort();
        vocab
    }

    /// Words for money ("revenue", "sales", "spent") name the numeric columns that hold amounts
    /// of money, unless the schema itself uses the word. Which one a question means is settled
    /// later: it must be the only one among the tables the question reaches.
    fn add_money_words(&mut self, catalog: &Catalog) {
        let free: Vec<&str> = MONEY_WORDS.iter().copied().filter(|w| !self.terms.contains_key(&stem(w))).collect();
        if free.is_empty() {
            return;
        }
        for (ti, table) in catalog.tables.iter().enumerate() {
            let key = key_column(self, ti, table);
            for (ci, col) in table.columns.iter().enumerate() {
                if col.is_numeric() && Some(ci) != key && self.holds_money(ti, ci) {
                    for w in &free {
                        self.add(&[w.to_string()], Target::Column(ti, ci));
                    }
                    self.money_keys = free.iter().map(|w| stem(w)).collect();
                }
            }
        }
    }

    /// A column named for an amount of money (`amount`, `total`, `revenue`, `sales`), or whose
    /// comment calls it revenue, sales or income.
    fn holds_money(&self, ti: usize, ci: usize) -> bool {
        let Some(words) = self.column_words.get(ti).and_then(|t| t.get(ci)) else { return false };
        let named =
            words.iter().any(|w| MONEY_COLUMN_WORDS.iter().any(|m| w == m || (w.len() > m.len() && w.ends_with(m))))
                && !words.iter().any(|w| NOT_MONEY_WORDS.contains(&w.as_str()));
        named || ["revenu", "sale", "income"].iter().any(|s| self.comment_has(ti, ci, s))
    }

    fn add(&mut self, words: &[String], target: Target) {
        if words.is_empty() {
            return;
        }
        let k = key(words);
        if k.is_empty() {
            return;
        }
        let entry = self.terms.entry(k).or_default();
        if !entry.contains(&target) {
            entry.push(target);
        }
    }

    /// What the stems of a run of question words name, if anything.
    pub(crate) fn lookup(&self, stems: &[&str]) -> Option<&[Target]> {
        let k: String = stems.concat();
        self.terms.get(&k).map(|v| v.as_slice())
    }

    /// A schema term one edit away from a single (long) question word.
    pub(crate) fn lookup_typo(&self, stem: &str) -> Option<&[Target]> {
        if stem.chars().count() < 6 {
            return None;
        }
        let mut found = self.typo_keys.iter().filter(|k| super::words::within_one_edit(k, stem));
        let first = found.next()?;
        if found.next().is_some() {
            return None;
        }
        self.terms.get(first).map(|v| v.as_slice())
    }

    /// Whether a question word is a money word standing for amount columns.
    pub(crate) fn is_money_word(&self, word: &str) -> bool {
        self.money_keys.contains(&stem(word))
    }

    pub(crate) fn comment_has(&self, table: usize, column: usize, stem: &str) -> bool {
        self.comment_stems.get(table).and_then(|t| t.get(column)).is_some_and(|s| s.contains(stem))
    }

    /// The words a column goes by in answers ("food type").
    pub(crate) fn column_label(&self, table: usize, column: usize) -> String {
        self.column_words.get(table).and_then(|t| t.get(column)).map(|w| w.join(" ")).unwrap_or_default()
    }

    pub(crate) fn table_label(&self, table: usize) -> String {
        self.table_words.get(table).map(|w| w.join(" ")).unwrap_or_default()
    }
}

/// Other ways a question names a column: without the table's name (`mountain_altitude` is
/// "altitude"), without a generic last word (`city_name` is "city", `citation_num` is
/// "citation"), "number of citations" for counts, "type of food" for `food_type`.
fn column_variants(words: &[String], table_words: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let without_table: Vec<String> = if words.len() > table_words.len() && words.starts_with(table_words) {
        words[table_words.len()..].to_vec()
    } else {
        words.to_vec()
    };
    out.push(without_table.clone());
    for w in [words.to_vec(), without_table] {
        if w.len() >= 2 {
            let last = w[w.len() - 1].as_str();
            if GENERIC_SUFFIXES.contains(&last) {
                let rest = w[..w.len() - 1].to_vec();
                if COUNT_SUFFIXES.contains(&last) {
                    let mut number_of = vec!["number".to_string(), "of".to_string()];
                    number_of.extend(rest.iter().cloned());
                    out.push(number_of);
                }
                out.push(rest);
            }
            if w.len() == 2 {
                out.push(vec![w[1].clone(), "of".into(), w[0].clone()]);
            }
        }
    }
    out
}

/// The column that names a table's rows: `name`, `<table>_name`, `title`, or the only text
/// column whose name ends in "name".
pub(crate) fn label_column(vocab: &Vocab, ti: usize, table: &Table) -> Option<usize> {
    let words = vocab.column_words.get(ti)?;
    let text = |ci: usize| table.columns.get(ci).is_some_and(Column::is_text);
    let exact = words.iter().enumerate().find(|(ci, w)| {
        text(*ci)
            && (w.as_slice() == ["name"]
                || w.as_slice() == ["title"]
                || (w.last().is_some_and(|l| l == "name") && w[..w.len() - 1] == vocab.table_words[ti][..]))
    });
    if let Some((ci, _)) = exact {
        return Some(ci);
    }
    let mut named = words.iter().enumerate().filter(|(ci, w)| text(*ci) && w.last().is_some_and(|l| l == "name"));
    match (named.next(), named.next()) {
        (Some((ci, _)), None) => Some(ci),
        _ => None,
    }
}

/// The column that identifies a table's rows: a one-column primary key, else `id`,
/// `<table>_id`, or an initial plus "id" (`pid` in `publication`).
pub(crate) fn key_column(vocab: &Vocab, ti: usize, table: &Table) -> Option<usize> {
    if let [pk] = table.primary_key.as_slice() {
        return table.columns.iter().position(|c| &c.name == pk);
    }
    let words = vocab.column_words.get(ti)?;
    let tname = vocab.table_words.get(ti)?.concat();
    let initial = tname.chars().next()?;
    let named = |f: &dyn Fn(&[String]) -> bool| words.iter().position(|w| f(w));
    named(&|w| w == ["id"])
        .or_else(|| named(&|w| w.concat() == format!("{tname}id")))
        .or_else(|| named(&|w| w.concat() == format!("{initial}id")))
        .filter(|ci| table.columns.get(*ci).is_some_and(|c| !c.is_temporal()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split() {
        assert_eq!(identifier_words("food_type"), vec!["food", "type"]);
        assert_eq!(identifier_words("sbCustName"), vec!["sb", "cust", "name"]);
    }

    #[test]
    fn prefixes() {
        let names: Vec<String> = ["sbcustomer", "sbticker", "sbtransaction"].iter().map(|s| s.to_string()).collect();
        assert_eq!(shared_prefix(&names, 3), 2);
        let names: Vec<String> = ["domain", "domain_author"].iter().map(|s| s.to_string()).collect();
        assert_eq!(shared_prefix(&names, 3), 0);
    }

    #[test]
    fn variants() {
        let v = column_variants(&["food".into(), "type".into()], &["restaurant".into()]);
        assert!(v.contains(&vec!["type".to_string(), "of".into(), "food".into()]));
        let v = column_variants(&["citation".into(), "num".into()], &["publication".into()]);
        assert!(v.contains(&vec!["number".to_string(), "of".into(), "citation".into()]));
        assert!(v.contains(&vec!["citation".to_string()]));
        let v = column_variants(&["mountain".into(), "altitude".into()], &["mountain".into()]);
        assert!(v.contains(&vec!["altitude".to_string()]));
    }
}
