//! The schema index: the words of every table and column (names, comments, enum labels), stemmed
//! once per catalog version, the terms questions use for them ("type of food" for `food_type`),
//! and what the naming conventions say (name and key columns, amounts of money, columns that
//! refer to other tables).
//!
//! It is built over the whole catalog, so it can be cached while roles come and go, and read only
//! through a `View`: the tables and columns one caller may read. A view never yields anything
//! else, and the statistics the ranker computes come from what a view yields.

use rustc_hash::FxHashSet as HashSet;
use std::borrow::Cow;

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

use super::text::{each_identifier_word, identifier_words, stem};
use crate::catalog::{Catalog, Column, Table};

/// A word of a name: its stem's id in the index's vocabulary, and its id among the words of
/// names as written, lowercase (compounds such as `dailyprice` are matched by parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Word {
    pub stem: u32,
    pub name: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnEntry {
    pub name: String,
    /// The words of the name.
    pub words: Vec<Word>,
    /// The words after a prefix all the table's columns share (`sbcustname` -> name), when
    /// there is one.
    pub rest: Option<Vec<Word>>,
    pub comment: Vec<u32>,
    pub enum_labels: Vec<u32>,
    /// The table this column refers to by naming convention (`customer_id` -> customer), as the
    /// stem id of that table's `normalized_name`.
    pub refers_to: Option<u32>,
    /// Named like a key (`aid`, `customer_id`; not the bare `id`).
    pub key_like: bool,
    /// Named for an amount of money, or described as revenue, sales or income.
    pub holds_money: bool,
}

impl ColumnEntry {
    /// The words the column goes by: without the shared prefix when there is one.
    pub fn label_words(&self) -> &[Word] {
        self.rest.as_deref().unwrap_or(&self.words)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub schema_words: Vec<u32>,
    pub words: Vec<Word>,
    /// The words after a prefix all the schema's table names share (`sbcustomer` -> customer).
    pub rest: Option<Vec<Word>>,
    pub comment: Vec<u32>,
    pub columns: Vec<ColumnEntry>,
    /// Lowercase, no separators, stemmed (a stem id): how columns of other tables name it.
    pub normalized_name: u32,
    /// The column naming the rows (`name`, `title`, `<table>_name`), and the one identifying them.
    pub label_column: Option<usize>,
    pub key_column: Option<usize>,
    /// The terms that name the table (column None) or one of its columns, as ids of term keys
    /// (stems joined).
    pub terms: Vec<(u32, Option<u32>)>,
    /// A price and a quantity column (order lines): their product is the rows' value in money.
    pub line_value: Option<(usize, usize)>,
}

impl TableEntry {
    pub fn label_words(&self) -> &[Word] {
        self.rest.as_deref().unwrap_or(&self.words)
    }
}

/// Trailing words that only say a column holds a name or a count of something.
const GENERIC_SUFFIXES: &[&str] = &["name", "num", "number", "nbr", "no", "cnt", "count"];
const COUNT_SUFFIXES: &[&str] = &["num", "number", "nbr", "no", "cnt", "count"];
/// Words of a column name that say it holds an amount of money (also at the end of a word: `sbtxamount`).
const MONEY_COLUMN_WORDS: &[&str] = &["amount", "revenue", "sales", "income", "turnover"];
/// Words of a column name that say it holds something else.
const NOT_MONEY_WORDS: &[&str] =
    &["count", "number", "num", "qty", "quantity", "id", "rate", "pct", "percent", "ratio"];
/// Comment words that call a column money.
const MONEY_COMMENT_WORDS: &[&str] = &["revenue", "sales", "income"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaIndex {
    /// Stems by id.
    vocabulary: Vec<String>,
    /// Words of names as written, by id.
    name_words: Vec<String>,
    #[serde(skip)]
    name_ids: HashMap<String, u32>,
    #[serde(skip)]
    ids: HashMap<String, u32>,
    /// Words as written -> their stem's id (spares stemming a word twice).
    #[serde(skip)]
    raw_ids: HashMap<String, u32>,
    pub tables: Vec<TableEntry>,
    /// Term keys by id.
    term_keys: Vec<String>,
    #[serde(skip)]
    term_ids: HashMap<String, u32>,
    /// Term key id -> (table, column) it names, over all tables.
    #[serde(skip)]
    terms: HashMap<u32, Vec<(u32, Option<u32>)>>,
}

impl SchemaIndex {
    pub fn build(catalog: &Catalog) -> SchemaIndex {
        SchemaIndex::rebuild(catalog, None)
    }

    /// The index of `catalog`, reusing the entries of `previous` for tables that are not in
    /// `changed` (oids) and whose schema's naming did not change.
    pub fn patch(previous: &SchemaIndex, catalog: &Catalog, changed: &HashSet<u32>) -> SchemaIndex {
        SchemaIndex::rebuild(catalog, Some((previous, changed)))
    }

    fn rebuild(catalog: &Catalog, reuse: Option<(&SchemaIndex, &HashSet<u32>)>) -> SchemaIndex {
        let mut index = SchemaIndex::default();
        let mut old: HashMap<(&str, &str), &TableEntry> = HashMap::default();
        if let Some((previous, _)) = reuse {
            index.vocabulary = previous.vocabulary.clone();
            index.ids = previous.ids.clone();
            index.name_words = previous.name_words.clone();
            // Not restored with a snapshot (only building needs it).
            index.name_ids = previous.name_words.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
            index.term_keys = previous.term_keys.clone();
            index.term_ids = previous.term_ids.clone();
            old = previous.tables.iter().map(|t| ((t.schema.as_str(), t.name.as_str()), t)).collect();
        }
        let prefixes = schema_prefixes(catalog);
        for table in &catalog.tables {
            let prefix = prefixes.get(table.schema.as_str()).copied().flatten();
            let reusable = reuse.and_then(|(_, changed)| {
                let entry = old.get(&(table.schema.as_str(), table.name.as_str()))?;
                let same_prefix = entry.rest.as_ref().map(|r| r.len()) == prefix.map(|p| rest_len(&table.name, p));
                (!changed.contains(&table.oid) && entry.oid == table.oid && same_prefix && same_columns(entry, table))
                    .then(|| (*entry).clone())
            });
            let entry = reusable.unwrap_or_else(|| index.entry(table, prefix));
            index.tables.push(entry);
        }
        index.index_terms();
        index
    }

    /// Restores what is not serialised (the vocabulary's lookup and the term map).
    pub fn after_deserialize(&mut self) {
        self.ids = self.vocabulary.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        self.term_ids = self.term_keys.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        self.index_terms();
    }

    fn index_terms(&mut self) {
        let mut terms: HashMap<u32, Vec<(u32, Option<u32>)>> = HashMap::default();
        for (ti, t) in self.tables.iter().enumerate() {
            // Each table's terms are distinct already.
            for &(key, column) in &t.terms {
                terms.entry(key).or_default().push((ti as u32, column));
            }
        }
        self.terms = terms;
    }

    fn intern(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.raw_ids.get(word) {
            return id;
        }
        let s = stem(word);
        let id = match self.ids.get(&s) {
            Some(&id) => id,
            None => {
                let id = self.vocabulary.len() as u32;
                self.ids.insert(s.clone(), id);
                self.vocabulary.push(s);
                id
            }
        };
        self.raw_ids.insert(word.to_string(), id);
        id
    }

    fn name_id(&mut self, raw: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(raw) {
            return id;
        }
        let id = self.name_words.len() as u32;
        self.name_ids.insert(raw.to_string(), id);
        self.name_words.push(raw.to_string());
        id
    }

    fn words(&mut self, name: &str) -> Vec<Word> {
        let mut out = Vec::new();
        each_identifier_word(name, |raw| {
            let name = self.name_id(raw);
            out.push(Word { stem: self.intern(raw), name });
        });
        out
    }

    fn term_id(&mut self, key: String) -> u32 {
        if let Some(&id) = self.term_ids.get(&key) {
            return id;
        }
        let id = self.term_keys.len() as u32;
        self.term_ids.insert(key.clone(), id);
        self.term_keys.push(key);
        id
    }

    /// The word as written, lowercase.
    pub fn raw(&self, w: &Word) -> &str {
        self.name_words.get(w.name as usize).map(String::as_str).unwrap_or("")
    }

    /// Words as written, joined with spaces.
    pub fn phrase(&self, words: &[Word]) -> String {
        words.iter().map(|w| self.raw(w)).collect::<Vec<_>>().join(" ")
    }

    fn text_stems(&mut self, text: Option<&str>) -> Vec<u32> {
        let mut ids = Vec::new();
        each_identifier_word(text.unwrap_or(""), |w| ids.push(self.intern(w)));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// A name reduced for convention matching (see `normalized_name`), as a stem id.
    fn normalized(&mut self, name: &str) -> u32 {
        let joined: String = identifier_words(name).concat();
        self.intern(&joined)
    }

    fn entry(&mut self, table: &Table, prefix: Option<usize>) -> TableEntry {
        let words = self.words(&table.name);
        let rest = prefix.and_then(|p| table.name.get(p..)).map(|r| self.words(r));
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let column_prefix = namespace_prefix(&names);
        let columns: Vec<ColumnEntry> = table.columns.iter().map(|c| self.column_entry(c, column_prefix)).collect();
        let mut entry = TableEntry {
            oid: table.oid,
            schema: table.schema.clone(),
            name: table.name.clone(),
            schema_words: self.words(&table.schema).into_iter().map(|w| w.stem).collect(),
            words,
            rest,
            comment: self.text_stems(table.comment.as_deref()),
            columns,
            normalized_name: self.normalized(&table.name),
            label_column: None,
            key_column: None,
            terms: Vec::new(),
            line_value: None,
        };
        entry.line_value = line_value(self, &entry, table);
        entry.label_column = label_column(self, &entry, table);
        entry.key_column = key_column(self, &entry, table);
        let table_prefix = prefix.and_then(|p| table.name.get(..p)).map(str::to_lowercase);
        entry.terms = self.terms_of(&entry, table_prefix.as_deref());
        entry
    }

    fn column_entry(&mut self, col: &Column, prefix: Option<usize>) -> ColumnEntry {
        let words = self.words(&col.name);
        let rest = prefix.and_then(|p| col.name.get(p..)).map(|r| self.words(r));
        let comment = self.text_stems(col.comment.as_deref());
        let mut enum_labels = Vec::new();
        for label in &col.enum_labels {
            enum_labels.extend(self.text_stems(Some(label)));
        }
        let label_raw: Vec<&str> = rest.as_deref().unwrap_or(&words).iter().map(|w| self.raw(w)).collect();
        let named_money = label_raw
            .iter()
            .any(|w| MONEY_COLUMN_WORDS.iter().any(|m| *w == *m || (w.len() > m.len() && w.ends_with(m))))
            && !label_raw.iter().any(|w| NOT_MONEY_WORDS.contains(w));
        let described_money =
            MONEY_COMMENT_WORDS.iter().any(|m| self.ids.get(&stem(m)).is_some_and(|id| comment.contains(id)));
        let holds_money = col.is_numeric() && (named_money || described_money);
        let refers_to = referenced_head(&col.name).map(|head| self.normalized(&head));
        ColumnEntry {
            name: col.name.clone(),
            refers_to,
            key_like: col.name.len() > 2 && col.name.as_bytes()[col.name.len() - 2..].eq_ignore_ascii_case(b"id"),
            holds_money,
            words,
            rest,
            comment,
            enum_labels,
        }
    }

    /// Keys of the terms naming a table and its columns: the names, without the shared
    /// prefixes, and the ways questions reword column names (see `column_variants`).
    fn terms_of(&mut self, t: &TableEntry, table_prefix: Option<&str>) -> Vec<(u32, Option<u32>)> {
        let mut out: Vec<(u32, Option<u32>)> = Vec::new();
        let mut add = |index: &mut SchemaIndex, words: &[&str], column: Option<u32>| {
            let mut key = String::new();
            for w in words {
                let id = index.intern(w) as usize;
                key.push_str(&index.vocabulary[id]);
            }
            if !key.is_empty() {
                let id = index.term_id(key);
                if !out.contains(&(id, column)) {
                    out.push((id, column));
                }
            }
        };
        let raw = |index: &SchemaIndex, ws: &[Word]| ws.iter().map(|w| index.raw(w).to_string()).collect::<Vec<_>>();
        let full = raw(self, &t.words);
        add(self, &full.iter().map(String::as_str).collect::<Vec<_>>(), None);
        let table_words = raw(self, t.label_words());
        add(self, &table_words.iter().map(String::as_str).collect::<Vec<_>>(), None);
        for (ci, c) in t.columns.iter().enumerate() {
            let ci = Some(ci as u32);
            let full = raw(self, &c.words);
            add(self, &full.iter().map(String::as_str).collect::<Vec<_>>(), ci);
            // `sbcustname` in a schema whose tables start with `sb`: "custname"
            if let Some(rest) = table_prefix.and_then(|p| c.name.to_lowercase().strip_prefix(p).map(str::to_string)) {
                let words = identifier_words(&rest);
                add(self, &words.iter().map(String::as_str).collect::<Vec<_>>(), ci);
            }
            let words = raw(self, c.label_words());
            for variant in std::iter::once(words.clone()).chain(column_variants(&words, &table_words)) {
                add(self, &variant.iter().map(String::as_str).collect::<Vec<_>>(), ci);
            }
        }
        out
    }

    /// The stem with this id.
    pub fn stem_of(&self, id: u32) -> &str {
        self.vocabulary.get(id as usize).map(String::as_str).unwrap_or("")
    }

    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// The words of names as written, by id (`Word::name`).
    pub fn name_words(&self) -> &[String] {
        &self.name_words
    }

    /// The id of a stem, if the schema uses it.
    pub fn id_of(&self, stem: &str) -> Option<u32> {
        self.ids.get(stem).copied()
    }

    pub fn view<'a>(&'a self, catalog: &'a Catalog) -> View<'a> {
        View::new(catalog, Some(self))
    }
}

fn rest_len(name: &str, prefix: usize) -> usize {
    name.get(prefix..).map(|r| identifier_words(r).len()).unwrap_or(0)
}

fn same_columns(entry: &TableEntry, table: &Table) -> bool {
    entry.columns.len() == table.columns.len()
        && entry.columns.iter().zip(&table.columns).all(|(e, c)| e.name == c.name)
}

/// Each schema's namespace prefix of table names, if its names have one.
fn schema_prefixes(catalog: &Catalog) -> HashMap<&str, Option<usize>> {
    let mut names: HashMap<&str, Vec<&str>> = HashMap::default();
    for t in &catalog.tables {
        names.entry(t.schema.as_str()).or_default().push(t.name.as_str());
    }
    names.into_iter().map(|(schema, names)| (schema, namespace_prefix(&names))).collect()
}

/// Length of a prefix glued to every name of a group (`sb` in `sbcustomer`, `sbticker`...; `cust`
/// in `custid`, `custname`...): a namespace, not a word, so the rest of each name is read alone
/// too. Prefixes followed by a separator need no help: words are split there anyway.
pub fn namespace_prefix(names: &[&str]) -> Option<usize> {
    const MIN_NAMES: usize = 3;
    const MIN_REST: usize = 2;
    let (first, others) = names.split_first()?;
    if others.len() + 1 < MIN_NAMES {
        return None;
    }
    let common = others.iter().fold(first.len(), |len, name| {
        first.bytes().zip(name.bytes()).take(len).take_while(|(a, b)| a.eq_ignore_ascii_case(b)).count()
    });
    let glued = |name: &str| {
        name.len() >= common + MIN_REST
            && name.is_char_boundary(common)
            && name[..common].chars().next_back().is_some_and(char::is_alphanumeric)
            && name[common..].chars().next().is_some_and(char::is_alphanumeric)
    };
    (common >= 2 && names.iter().all(|n| glued(n))).then_some(common)
}

/// The part of a column name that names another table by convention: `customer_id`,
/// `customerId`, `customerid`, `state_name`, `country_code` -> customer, state, country.
fn referenced_head(column: &str) -> Option<String> {
    let lower = column.to_lowercase();
    ["id", "name", "code", "key", "no"].iter().find_map(|suffix| {
        let head = lower.strip_suffix(suffix)?.trim_end_matches('_');
        let bare_suffix_allowed = *suffix == "id";
        let separated = lower.len() > head.len() + suffix.len();
        (head.len() >= 2 && (separated || bare_suffix_allowed)).then(|| head.to_string())
    })
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

/// The one numeric price column and the one numeric quantity column of a table without a column of
/// amounts: `unit_price` and `quantity` of an order line.
fn line_value(index: &SchemaIndex, entry: &TableEntry, table: &Table) -> Option<(usize, usize)> {
    if entry.columns.iter().any(|c| c.holds_money) {
        return None;
    }
    let numeric_with = |words: &[&str]| -> Vec<usize> {
        (0..entry.columns.len())
            .filter(|&ci| table.columns.get(ci).is_some_and(Column::is_numeric))
            .filter(|&ci| entry.columns[ci].label_words().iter().any(|w| words.contains(&index.raw(w))))
            .collect()
    };
    match (numeric_with(&["price"]).as_slice(), numeric_with(&["quantity", "qty", "units"]).as_slice()) {
        ([price], [quantity]) => Some((*price, *quantity)),
        _ => None,
    }
}

/// The column that names a table's rows: `name`, `title`, `<table>_name`, or the only text
/// column whose name ends in "name".
fn label_column(index: &SchemaIndex, entry: &TableEntry, table: &Table) -> Option<usize> {
    let text = |ci: usize| table.columns.get(ci).is_some_and(Column::is_text);
    let table_words: Vec<&str> = entry.label_words().iter().map(|w| index.raw(w)).collect();
    let words = |ci: usize| -> Vec<&str> { entry.columns[ci].label_words().iter().map(|w| index.raw(w)).collect() };
    let exact = (0..entry.columns.len()).find(|&ci| {
        let w = words(ci);
        text(ci)
            && (w == ["name"] || w == ["title"] || (w.last() == Some(&"name") && w[..w.len() - 1] == table_words[..]))
    });
    if exact.is_some() {
        return exact;
    }
    let mut named = (0..entry.columns.len()).filter(|&ci| text(ci) && words(ci).last() == Some(&"name"));
    match (named.next(), named.next()) {
        (Some(ci), None) => Some(ci),
        _ => None,
    }
}

/// The column that identifies a table's rows: a one-column primary key, else `id`,
/// `<table>_id`, or an initial plus "id" (`pid` in `publication`).
fn key_column(index: &SchemaIndex, entry: &TableEntry, table: &Table) -> Option<usize> {
    if let [pk] = table.primary_key.as_slice() {
        return table.columns.iter().position(|c| &c.name == pk);
    }
    let tname: String = entry.label_words().iter().map(|w| index.raw(w)).collect();
    let initial = tname.chars().next()?;
    let concat = |ci: usize| -> String { entry.columns[ci].label_words().iter().map(|w| index.raw(w)).collect() };
    let named = |want: &str| (0..entry.columns.len()).find(|&ci| concat(ci) == want);
    named("id")
        .or_else(|| named(&format!("{tname}id")))
        .or_else(|| named(&format!("{initial}id")))
        .filter(|ci| table.columns.get(*ci).is_some_and(|c| !c.is_temporal()))
}

/// Where a caller's table sits in the index: its entry, and for each of the entry's columns the
/// caller's column position (None when hidden).
#[derive(Debug, Clone)]
struct Placed {
    entry: usize,
    /// None when every column is visible (positions are the same).
    columns: Option<Vec<Option<usize>>>,
}

/// The index as one caller sees it: the caller's catalog (already filtered to what it may read)
/// and, for each of its tables and columns, their entries. Positions are the caller's catalog's.
#[derive(Debug, Clone)]
pub struct View<'a> {
    pub catalog: &'a Catalog,
    index: Cow<'a, SchemaIndex>,
    placed: Vec<Placed>,
    /// Entry -> the caller's table position.
    visible: Vec<Option<usize>>,
}

impl<'a> View<'a> {
    /// The view of `catalog` through `index`; an index is built when none is given or when the
    /// given one does not cover the catalog (it is stale).
    pub fn new(catalog: &'a Catalog, index: Option<&'a SchemaIndex>) -> View<'a> {
        if let Some(index) = index {
            if let Some(view) = View::place(catalog, Cow::Borrowed(index)) {
                return view;
            }
        }
        View::place(catalog, Cow::Owned(SchemaIndex::build(catalog))).expect("an index covers its own catalog")
    }

    fn place(catalog: &'a Catalog, index: Cow<'a, SchemaIndex>) -> Option<View<'a>> {
        let mut by_name: HashMap<(&str, &str), usize> = HashMap::default();
        for (i, e) in index.tables.iter().enumerate() {
            by_name.insert((e.schema.as_str(), e.name.as_str()), i);
        }
        let mut placed = Vec::with_capacity(catalog.tables.len());
        let mut visible = vec![None; index.tables.len()];
        for (ti, t) in catalog.tables.iter().enumerate() {
            let entry = *by_name.get(&(t.schema.as_str(), t.name.as_str()))?;
            let e = &index.tables[entry];
            if e.oid != t.oid {
                return None;
            }
            let columns = if same_columns(e, t) {
                None
            } else {
                // The caller's columns are a subsequence of the entry's.
                let mut map = vec![None; e.columns.len()];
                let mut next = 0;
                for (ci, c) in t.columns.iter().enumerate() {
                    let found = e.columns[next..].iter().position(|x| x.name == c.name)? + next;
                    map[found] = Some(ci);
                    next = found + 1;
                }
                Some(map)
            };
            visible[entry] = Some(ti);
            placed.push(Placed { entry, columns });
        }
        Some(View { catalog, index, placed, visible })
    }

    pub fn index(&self) -> &SchemaIndex {
        &self.index
    }

    /// The entry of the caller's table `t`.
    pub fn table(&self, t: usize) -> &TableEntry {
        &self.index.tables[self.placed[t].entry]
    }

    /// The entry of the caller's column `c` of table `t`.
    pub fn column(&self, t: usize, c: usize) -> &ColumnEntry {
        let p = &self.placed[t];
        let e = &self.index.tables[p.entry];
        match &p.columns {
            None => &e.columns[c],
            Some(map) => {
                let full = map.iter().position(|m| *m == Some(c)).expect("placed column");
                &e.columns[full]
            }
        }
    }

    /// The caller's position of an entry's column, if visible.
    fn caller_column(&self, t: usize, entry_column: usize) -> Option<usize> {
        match &self.placed[t].columns {
            None => Some(entry_column),
            Some(map) => map.get(entry_column).copied().flatten(),
        }
    }

    /// The caller's visible columns of table `t` with their entries, in order.
    pub fn columns(&self, t: usize) -> impl Iterator<Item = (usize, &ColumnEntry)> + '_ {
        let e = &self.index.tables[self.placed[t].entry];
        e.columns.iter().enumerate().filter_map(move |(full, c)| self.caller_column(t, full).map(|ci| (ci, c)))
    }

    /// What a term key names among what the caller may read: (table, None) for a table,
    /// (table, Some(column)) for a column, caller positions.
    pub fn lookup(&self, key: &str) -> Vec<(usize, Option<usize>)> {
        let Some(targets) = self.index.term_ids.get(key).and_then(|id| self.index.terms.get(id)) else {
            return Vec::new();
        };
        targets
            .iter()
            .filter_map(|&(entry, column)| {
                let t = self.visible[entry as usize]?;
                match column {
                    None => Some((t, None)),
                    Some(c) => self.caller_column(t, c as usize).map(|c| (t, Some(c))),
                }
            })
            .collect()
    }

    /// The term keys of the index that the caller can see something under, at least `min_chars`
    /// long (for typo matching).
    pub fn keys_at_least(&self, min_chars: usize) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .index
            .term_keys
            .iter()
            .filter(|k| k.chars().count() >= min_chars)
            .map(String::as_str)
            .filter(|k| !self.lookup(k).is_empty())
            .collect();
        keys.sort_unstable();
        keys
    }

    /// The label column of table `t`, if the caller can read it.
    pub fn label_column(&self, t: usize) -> Option<usize> {
        self.table(t).label_column.and_then(|c| self.caller_column(t, c))
    }

    /// The price and quantity columns of table `t` whose product is its rows' value, if readable.
    pub fn line_value(&self, t: usize) -> Option<(usize, usize)> {
        let (price, quantity) = self.table(t).line_value?;
        Some((self.caller_column(t, price)?, self.caller_column(t, quantity)?))
    }

    /// The key column of table `t`, if the caller can read it.
    pub fn key_column(&self, t: usize) -> Option<usize> {
        self.table(t).key_column.and_then(|c| self.caller_column(t, c))
    }

    /// The words a column goes by in answers ("food type").
    pub fn column_label(&self, t: usize, c: usize) -> String {
        self.index.phrase(self.column(t, c).label_words())
    }

    /// The words a table goes by in answers ("customer").
    pub fn table_label(&self, t: usize) -> String {
        self.index.phrase(self.table(t).label_words())
    }

    /// The words of a column's name as it goes by, lowercase.
    pub fn column_words(&self, t: usize, c: usize) -> Vec<&str> {
        self.column(t, c).label_words().iter().map(|w| self.index.raw(w)).collect()
    }

    /// The words of a table's name as it goes by, lowercase.
    pub fn table_words(&self, t: usize) -> Vec<&str> {
        self.table(t).label_words().iter().map(|w| self.index.raw(w)).collect()
    }

    /// Whether column `c` of table `t` has this stem in its comment.
    pub fn comment_has(&self, t: usize, c: usize, stem: &str) -> bool {
        self.index.id_of(stem).is_some_and(|id| self.column(t, c).comment.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;

    fn table(schema: &str, name: &str, columns: &[(&str, char)]) -> Table {
        Table::new(schema, name, columns.iter().map(|(n, k)| Column::new(n, "t", *k)).collect())
    }

    fn broker() -> Catalog {
        Catalog {
            tables: vec![
                table("public", "sbcustomer", &[("sbcustid", 'S'), ("sbcustname", 'S'), ("sbcustcountry", 'S')]),
                table("public", "sbticker", &[("sbtickerid", 'S'), ("sbtickersymbol", 'S'), ("sbtickername", 'S')]),
                table("public", "sbtransaction", &[("sbtxid", 'S'), ("sbtxamount", 'N'), ("sbtxcustid", 'S')]),
            ],
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(namespace_prefix(&["sbcustomer", "sbticker", "sbtransaction"]), Some(2));
        assert_eq!(namespace_prefix(&["domain", "domain_author", "domain_x"]), None);
        let index = SchemaIndex::build(&broker());
        let catalog = broker();
        let view = index.view(&catalog);
        assert_eq!(view.table_label(0), "customer");
        assert_eq!(view.column_label(0, 1), "name");
        assert_eq!(index.tables[0].label_column, Some(1));
        assert!(index.tables[2].columns[1].holds_money);
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

    #[test]
    fn a_view_yields_only_what_the_caller_reads() {
        let full = broker();
        let index = SchemaIndex::build(&full);
        let mut visible = full.clone();
        visible.tables.remove(1);
        visible.tables[0].columns.remove(2);
        let view = index.view(&visible);
        assert!(view.lookup(&stem("ticker")).is_empty());
        assert!(view.lookup(&stem("country")).is_empty());
        assert_eq!(view.lookup(&stem("customer")), vec![(0, None)]);
        assert_eq!(view.lookup(&stem("name")), vec![(0, Some(1))]);
        assert_eq!(view.columns(0).count(), 2);
        assert!(!view.keys_at_least(6).iter().any(|k| k.contains("ticker")));
        // A stale index is not used.
        let mut renamed = visible.clone();
        renamed.tables[0].name = "sbclient".into();
        assert_eq!(View::new(&renamed, Some(&index)).lookup(&stem("sbclient")), vec![(0, None)]);
    }

    #[test]
    fn patching_reuses_unchanged_entries() {
        let mut catalog = broker();
        let index = SchemaIndex::build(&catalog);
        catalog.tables[1].columns.push(Column::new("sbtickerexchange", "t", 'S'));
        let patched = SchemaIndex::patch(&index, &catalog, &HashSet::default());
        assert_eq!(patched.tables[0], index.tables[0], "unchanged tables keep their entries");
        let fresh = SchemaIndex::build(&catalog);
        assert_eq!(patched.view(&catalog).lookup(&stem("exchange")), fresh.view(&catalog).lookup(&stem("exchange")));
        assert_eq!(patched.view(&catalog).lookup(&stem("exchange")), vec![(1, Some(3))]);
    }
}
