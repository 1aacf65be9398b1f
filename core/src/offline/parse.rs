//! From a question to a `Query`: every meaningful word must be claimed by a phrase the planner
//! understands (a cue such as "how many" or "top 5", a table, a column, a value found in the data,
//! a number, a time phrase) or be a word that only frames the question. Anything else declines.

use std::collections::{BTreeSet, HashMap};

use crate::catalog::{quote_ident, Catalog};

use super::joins::{self, Reach};
use super::query::{Agg, ColRef, Filter, GroupKey, MatchMode, Measure, Op, OrderKey, Query, Ratio, Unit};
use super::schema::{key_column, label_column, Target, Vocab};
use super::Probe;
use crate::lang::words::{is_stop_word, number_at};
use crate::lang::{stem, tokenize, Token as Tok};

/// At most this many text columns are looked up for values, in one bounded query.
const MAX_PROBE_COLUMNS: usize = 12;
/// Rows a value lookup may return.
const PROBE_ROW_LIMIT: usize = 20;
const MAX_TERM_WORDS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cue {
    Count,
    Agg(Agg),
    /// A superlative: true for "highest", false for "lowest".
    Sup(bool),
    /// "top 5" (true) / "bottom 5" (false).
    Top(bool, u64),
    /// "each", "per", "for every".
    Each,
    By,
    OrderBy,
    /// An explicit direction: true descending.
    Dir(bool),
    /// "from highest to lowest": the direction, and the token after the phrase (a column named
    /// inside it or right after it is what is ordered).
    Range(bool, usize),
    Alphabetical,
    Distinct,
    /// "ratio of", "share of", "percentage of" (true: a percentage).
    Ratio(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Cue(Cue),
    Mention { targets: Vec<Target>, plural: bool, start: usize, end: usize },
}

struct Span {
    start: usize,
    end: usize,
    item: Item,
}

pub(crate) struct Parsed {
    pub query: Query,
}

struct Parser<'a> {
    catalog: &'a Catalog,
    vocab: &'a Vocab<'a, 'a>,
    toks: Vec<Tok>,
    stems: Vec<String>,
    used: Vec<bool>,
    spans: Vec<Span>,
    mode: MatchMode,
    /// Filters with the token where each was found.
    filters: Vec<(usize, Filter)>,
    /// Time phrases waiting for the table's date column: (token, what).
    time: Vec<(usize, TimePhrase)>,
    /// Comparisons waiting for their column: (first token, op, value).
    comparisons: Vec<(usize, Op, f64)>,
    /// The tables the question may use: the base table first, then tables it reaches along
    /// foreign keys that the question names.
    scope: Vec<usize>,
    /// How each joined table is reached from the base table.
    reach: HashMap<usize, Reach>,
    /// Where a ratio's second part starts ("to", "out of").
    ratio_separator: Option<usize>,
}

#[derive(Debug, Clone)]
enum TimePhrase {
    Year(i32),
    Recent(u32, Unit),
    Date(Op, String),
}

pub(crate) fn parse(vocab: &Vocab, question: &str, probe: &mut dyn Probe) -> Result<Parsed, String> {
    let catalog = vocab.catalog();
    let toks = tokenize(question);
    if toks.is_empty() {
        return Err("the question is empty".into());
    }
    let stems = toks.iter().map(|t| t.word().map(stem).unwrap_or_default()).collect();
    let n = toks.len();
    let mut p = Parser {
        catalog,
        vocab,
        toks,
        stems,
        used: vec![false; n],
        spans: Vec::new(),
        mode: MatchMode::Exact,
        filters: Vec::new(),
        time: Vec::new(),
        comparisons: Vec::new(),
        scope: Vec::new(),
        reach: HashMap::new(),
        ratio_separator: None,
    };
    p.instructions();
    p.time_phrases();
    p.comparisons();
    p.cues();
    p.mentions();
    let base = p.base_table()?;
    p.narrow_mentions();
    p.merge_mentions();
    p.values(probe)?;
    p.build(base)
}

fn w(toks: &[Tok], i: usize) -> &str {
    toks.get(i).and_then(Tok::word).unwrap_or("")
}

fn unit_of(word: &str) -> Option<Unit> {
    match word {
        "day" | "days" | "daily" => Some(Unit::Day),
        "week" | "weeks" | "weekly" => Some(Unit::Week),
        "month" | "months" | "monthly" => Some(Unit::Month),
        "quarter" | "quarters" | "quarterly" => Some(Unit::Quarter),
        "year" | "years" | "yearly" | "annual" | "annually" => Some(Unit::Year),
        _ => None,
    }
}

fn month_number(word: &str) -> Option<u32> {
    const MONTHS: &[&str] = &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if word.len() < 3 {
        return None;
    }
    MONTHS.iter().position(|m| m.starts_with(word)).map(|i| i as u32 + 1)
}

impl Parser<'_> {
    fn mark(&mut self, start: usize, end: usize) {
        for u in &mut self.used[start..end.min(self.toks.len())] {
            *u = true;
        }
    }

    fn free(&self, i: usize) -> bool {
        i < self.toks.len() && !self.used[i]
    }

    /// Sentences that only say how to match strings ("Always filter names using ILIKE").
    fn instructions(&mut self) {
        const WORDS: &[&str] = &[
            "always",
            "filter",
            "filtering",
            "match",
            "matching",
            "all",
            "strings",
            "string",
            "names",
            "name",
            "text",
            "values",
            "value",
            "using",
            "use",
            "with",
            "ilike",
            "like",
            "percent",
            "sign",
            "signs",
            "wildcard",
            "wildcards",
            "operator",
            "operators",
            "case",
            "insensitively",
            "insensitive",
            "exact",
            "exactly",
            "an",
            "a",
            "the",
            "on",
            "and",
            "columns",
            "column",
        ];
        let mut start = 0;
        while start < self.toks.len() {
            let end = (start..self.toks.len()).find(|&i| self.toks[i] == Tok::Break).unwrap_or(self.toks.len());
            let words: Vec<&str> = (start..end).map(|i| w(&self.toks, i)).collect();
            let is_column = |word: &str| word.contains('_') && self.vocab.lookup(&[&stem(word)]).is_some();
            let all_known = words.iter().all(|x| WORDS.contains(x) || is_column(x));
            let says_match = words.iter().any(|x| *x == "match" || *x == "filter" || *x == "matching");
            if !words.is_empty() && all_known && says_match {
                if words
                    .iter()
                    .any(|x| x.starts_with("insensitiv") || *x == "ilike" || x.starts_with("wildcard") || *x == "like")
                {
                    self.mode = MatchMode::Contains;
                }
                self.mark(start, end + 1);
            }
            start = end + 1;
        }
    }

    /// "in 2023", "in the last 30 days", "on 2023-04-01", "since Jan 1, 2023".
    fn time_phrases(&mut self) {
        let mut i = 0;
        while i < self.toks.len() {
            let word = w(&self.toks, i).to_string();
            // last/past N units
            if matches!(word.as_str(), "last" | "past" | "previous") {
                let (n, len) = number_at(&self.toks, i + 1).unwrap_or((1.0, 0));
                if let Some(unit) = unit_of(w(&self.toks, i + 1 + len)) {
                    if n >= 1.0 && n.fract() == 0.0 && n <= 100_000.0 {
                        self.time.push((i, TimePhrase::Recent(n as u32, unit)));
                        self.mark(i, i + 2 + len);
                        i += 2 + len;
                        continue;
                    }
                }
            }
            if matches!(word.as_str(), "in" | "during" | "for" | "of") {
                let mut j = i + 1;
                if w(&self.toks, j) == "the" && w(&self.toks, j + 1) == "year" {
                    j += 2;
                }
                if let Some(Tok::Num(y)) = self.toks.get(j) {
                    if y.fract() == 0.0 && (1800.0..=2200.0).contains(y) {
                        self.time.push((i, TimePhrase::Year(*y as i32)));
                        self.mark(i, j + 1);
                        i = j + 1;
                        continue;
                    }
                }
            }
            let (op, len) = match (word.as_str(), w(&self.toks, i + 1), w(&self.toks, i + 2)) {
                ("on", "or", "after") => (Some(Op::Ge), 3),
                ("on", "or", "before") => (Some(Op::Le), 3),
                ("since", _, _) | ("from", _, _) => (Some(Op::Ge), 1),
                ("after", _, _) => (Some(Op::Gt), 1),
                ("before", _, _) => (Some(Op::Lt), 1),
                ("on", _, _) => (Some(Op::Eq), 1),
                _ => (None, 0),
            };
            if let Some(op) = op {
                if let Some((date, dlen)) = self.date_at(i + len) {
                    self.time.push((i, TimePhrase::Date(op, date)));
                    self.mark(i, i + len + dlen);
                    i += len + dlen;
                    continue;
                }
            }
            i += 1;
        }
    }

    /// `2023-04-01`, `April 1, 2023`, `Apr 1 2023`.
    fn date_at(&self, i: usize) -> Option<(String, usize)> {
        if let Some(Tok::Date(d)) = self.toks.get(i) {
            return Some((d.clone(), 1));
        }
        let month = month_number(w(&self.toks, i))?;
        let (Some(Tok::Num(day)), Some(Tok::Num(year))) = (self.toks.get(i + 1), self.toks.get(i + 2)) else {
            return None;
        };
        if day.fract() != 0.0 || !(1.0..=31.0).contains(day) || year.fract() != 0.0 || !(1800.0..=2200.0).contains(year)
        {
            return None;
        }
        Some((format!("{:04}-{:02}-{:02}", *year as i32, month, *day as u32), 3))
    }

    /// "rating > 4.5", "more than a hundred", "at least 3".
    fn comparisons(&mut self) {
        const PHRASES: &[(&[&str], Op)] = &[
            (&["greater", "than", "or", "equal", "to"], Op::Ge),
            (&["less", "than", "or", "equal", "to"], Op::Le),
            (&["greater", "than"], Op::Gt),
            (&["more", "than"], Op::Gt),
            (&["higher", "than"], Op::Gt),
            (&["larger", "than"], Op::Gt),
            (&["bigger", "than"], Op::Gt),
            (&["above"], Op::Gt),
            (&["over"], Op::Gt),
            (&["exceeding"], Op::Gt),
            (&["less", "than"], Op::Lt),
            (&["fewer", "than"], Op::Lt),
            (&["lower", "than"], Op::Lt),
            (&["smaller", "than"], Op::Lt),
            (&["below"], Op::Lt),
            (&["under"], Op::Lt),
            (&["at", "least"], Op::Ge),
            (&["at", "most"], Op::Le),
            (&["no", "more", "than"], Op::Le),
            (&["equal", "to"], Op::Eq),
            (&["exactly"], Op::Eq),
            (&["of"], Op::Eq),
        ];
        let mut i = 0;
        while i < self.toks.len() {
            if self.used[i] {
                i += 1;
                continue;
            }
            let mut found = None;
            if let Tok::Sym(s) = &self.toks[i] {
                found = match s.as_str() {
                    ">" => Some((Op::Gt, 1)),
                    ">=" => Some((Op::Ge, 1)),
                    "<" => Some((Op::Lt, 1)),
                    "<=" => Some((Op::Le, 1)),
                    "=" => Some((Op::Eq, 1)),
                    _ => None,
                };
            } else {
                for (phrase, op) in PHRASES {
                    if phrase.iter().enumerate().all(|(k, p)| w(&self.toks, i + k) == *p) {
                        found = Some((*op, phrase.len()));
                        break;
                    }
                }
            }
            if let Some((op, len)) = found {
                // "of 4" only as "a rating of 4"; other phrases need a number right after.
                if let Some((value, nlen)) = number_at(&self.toks, i + len) {
                    let plain_of = len == 1 && w(&self.toks, i) == "of";
                    let next_is_unit = unit_of(w(&self.toks, i + len + nlen)).is_some();
                    if !next_is_unit && (!plain_of || matches!(self.toks.get(i + len), Some(Tok::Num(_)))) {
                        self.comparisons.push((i, op, value));
                        self.mark(i, i + len + nlen);
                        i += len + nlen;
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    fn cues(&mut self) {
        const PHRASES: &[(&[&str], Cue)] = &[
            (&["total", "number", "of"], Cue::Count),
            (&["total", "count", "of"], Cue::Count),
            (&["how", "many"], Cue::Count),
            (&["number", "of"], Cue::Count),
            (&["count", "of"], Cue::Count),
            (&["count"], Cue::Count),
            (&["sum", "of"], Cue::Agg(Agg::Sum)),
            (&["sum"], Cue::Agg(Agg::Sum)),
            (&["total"], Cue::Agg(Agg::Sum)),
            (&["average"], Cue::Agg(Agg::Avg)),
            (&["avg"], Cue::Agg(Agg::Avg)),
            (&["mean"], Cue::Agg(Agg::Avg)),
            (&["maximum"], Cue::Agg(Agg::Max)),
            (&["max"], Cue::Agg(Agg::Max)),
            (&["minimum"], Cue::Agg(Agg::Min)),
            (&["min"], Cue::Agg(Agg::Min)),
            (&["highest"], Cue::Sup(true)),
            (&["largest"], Cue::Sup(true)),
            (&["biggest"], Cue::Sup(true)),
            (&["greatest"], Cue::Sup(true)),
            (&["most"], Cue::Sup(true)),
            (&["longest"], Cue::Sup(true)),
            (&["tallest"], Cue::Sup(true)),
            (&["best"], Cue::Sup(true)),
            (&["lowest"], Cue::Sup(false)),
            (&["smallest"], Cue::Sup(false)),
            (&["least"], Cue::Sup(false)),
            (&["fewest"], Cue::Sup(false)),
            (&["shortest"], Cue::Sup(false)),
            (&["worst"], Cue::Sup(false)),
            (&["for", "each"], Cue::Each),
            (&["for", "every"], Cue::Each),
            (&["in", "each"], Cue::Each),
            (&["of", "each"], Cue::Each),
            (&["each"], Cue::Each),
            (&["every"], Cue::Each),
            (&["per"], Cue::Each),
            (&["grouped", "by"], Cue::By),
            (&["group", "by"], Cue::By),
            (&["broken", "down", "by"], Cue::By),
            (&["by"], Cue::By),
            (&["order", "the", "results", "by"], Cue::OrderBy),
            (&["sort", "the", "results", "by"], Cue::OrderBy),
            (&["ordered", "by"], Cue::OrderBy),
            (&["order", "by"], Cue::OrderBy),
            (&["sorted", "by"], Cue::OrderBy),
            (&["sort", "by"], Cue::OrderBy),
            (&["ranked", "by"], Cue::OrderBy),
            (&["in", "descending", "order"], Cue::Dir(true)),
            (&["in", "ascending", "order"], Cue::Dir(false)),
            (&["descending"], Cue::Dir(true)),
            (&["desc"], Cue::Dir(true)),
            (&["ascending"], Cue::Dir(false)),
            (&["asc"], Cue::Dir(false)),
            (&["in", "alphabetical", "order"], Cue::Alphabetical),
            (&["ordered", "alphabetically"], Cue::Alphabetical),
            (&["sorted", "alphabetically"], Cue::Alphabetical),
            (&["alphabetically"], Cue::Alphabetical),
            (&["alphabetical", "order"], Cue::Alphabetical),
            (&["how", "much"], Cue::Agg(Agg::Sum)),
            (&["ratio", "of"], Cue::Ratio(false)),
            (&["proportion", "of"], Cue::Ratio(false)),
            (&["share", "of"], Cue::Ratio(false)),
            (&["fraction", "of"], Cue::Ratio(false)),
            (&["percentage", "of"], Cue::Ratio(true)),
            (&["percent", "of"], Cue::Ratio(true)),
            (&["distinct"], Cue::Distinct),
            (&["unique"], Cue::Distinct),
            (&["different"], Cue::Distinct),
        ];
        let mut i = 0;
        while i < self.toks.len() {
            if self.used[i] {
                i += 1;
                continue;
            }
            // "top 5", "bottom 3", "5 highest", "first 10"
            let word = w(&self.toks, i);
            if matches!(word, "top" | "bottom" | "first") {
                if let Some((n, len)) = number_at(&self.toks, i + 1) {
                    if n >= 1.0 && n.fract() == 0.0 && n <= 10_000.0 {
                        self.push(i, i + 1 + len, Item::Cue(Cue::Top(word != "bottom", n as u64)));
                        i += 1 + len;
                        continue;
                    }
                }
            }
            // "from highest to lowest", "from the best ratings to the lowest": the direction of the first.
            if word == "from" {
                if let Some(end) = self.range_phrase(i) {
                    i = end;
                    continue;
                }
            }
            if let Some((n, len)) = number_at(&self.toks, i) {
                let next = w(&self.toks, i + len);
                let sup = PHRASES.iter().find(|(p, c)| p.len() == 1 && p[0] == next && matches!(c, Cue::Sup(_)));
                if let (Some((_, Cue::Sup(desc))), true) = (sup, n >= 1.0 && n.fract() == 0.0 && n <= 10_000.0) {
                    self.push(i, i + len, Item::Cue(Cue::Top(*desc, n as u64)));
                    i += len;
                    continue;
                }
            }
            // A column named with a cue's words ("number of citations" for `citation_num`) is the column.
            let names_column = (3..=MAX_TERM_WORDS).any(|len| {
                i + len <= self.toks.len()
                    && (i..i + len).all(|k| self.free(k) && self.toks[k].word().is_some())
                    && self
                        .vocab
                        .lookup(&self.stems[i..i + len].iter().map(String::as_str).collect::<Vec<_>>())
                        .is_some_and(|t| t.iter().any(|t| matches!(t, Target::Column(..))))
            });
            if names_column {
                i += 1;
                continue;
            }
            let mut matched = false;
            for (phrase, cue) in PHRASES {
                if phrase.iter().enumerate().all(|(k, p)| self.free(i + k) && w(&self.toks, i + k) == *p) {
                    self.push(i, i + phrase.len(), Item::Cue(*cue));
                    if matches!(cue, Cue::Ratio(_)) {
                        self.ratio_separator(i + phrase.len());
                    }
                    i += phrase.len();
                    matched = true;
                    break;
                }
            }
            if !matched {
                i += 1;
            }
        }
    }

    /// The first free "to" or "out of" after a ratio cue divides its two parts.
    fn ratio_separator(&mut self, from: usize) {
        let Some(i) = (from..self.toks.len()).find(|&i| self.free(i) && matches!(w(&self.toks, i), "to" | "out"))
        else {
            return;
        };
        let len = match (w(&self.toks, i), w(&self.toks, i + 1)) {
            ("to", _) => 1,
            ("out", "of") => 2,
            _ => return,
        };
        self.mark(i, i + len);
        self.ratio_separator = Some(i);
    }

    fn range_phrase(&mut self, from: usize) -> Option<usize> {
        let sup = |word: &str| match word {
            "highest" | "largest" | "biggest" | "greatest" | "most" | "longest" | "best" | "tallest" | "top"
            | "newest" | "latest" => Some(true),
            "lowest" | "smallest" | "least" | "fewest" | "shortest" | "worst" | "bottom" | "oldest" | "earliest" => {
                Some(false)
            }
            _ => None,
        };
        let mut j = from + 1;
        while w(&self.toks, j) == "the" {
            j += 1;
        }
        let first = sup(w(&self.toks, j))?;
        let to = (j + 1..(j + 6).min(self.toks.len())).find(|&k| w(&self.toks, k) == "to")?;
        let mut k = to + 1;
        while w(&self.toks, k) == "the" {
            k += 1;
        }
        let second = sup(w(&self.toks, k))?;
        if first == second {
            return None;
        }
        // Words between the superlatives are left for the schema ("from the best ratings").
        self.push(from, from + 1, Item::Cue(Cue::Range(first, k + 1)));
        if from > 0
            && self.free(from - 1)
            && matches!(w(&self.toks, from - 1), "ordered" | "sorted" | "ranked" | "arranged" | "starting" | "going")
        {
            self.mark(from - 1, from);
        }
        self.mark(j, j + 1);
        self.mark(to, to + 1);
        self.mark(k, k + 1);
        Some(j + 1)
    }

    fn push(&mut self, start: usize, end: usize, item: Item) {
        self.mark(start, end);
        self.spans.push(Span { start, end, item });
    }

    /// Tables and columns named by runs of free words, longest first.
    fn mentions(&mut self) {
        let mut i = 0;
        while i < self.toks.len() {
            if !self.free(i) || self.toks[i].word().is_none() || is_stop_word(w(&self.toks, i)) {
                i += 1;
                continue;
            }
            let max = (i..self.toks.len().min(i + MAX_TERM_WORDS))
                .take_while(|&k| self.free(k) && self.toks[k].word().is_some())
                .count();
            let mut found = None;
            for len in (1..=max).rev() {
                let last = w(&self.toks, i + len - 1);
                if len > 1 && is_stop_word(last) {
                    continue;
                }
                let stems: Vec<&str> = self.stems[i..i + len].iter().map(String::as_str).collect();
                if let Some(targets) = self.vocab.lookup(&stems) {
                    found = Some((len, targets.to_vec()));
                    break;
                }
            }
            if found.is_none() {
                found = self.vocab.lookup_typo(&self.stems[i]).map(|t| (1, t.to_vec()));
            }
            match found {
                Some((len, targets)) => {
                    let plural = is_plural(w(&self.toks, i + len - 1));
                    self.push(i, i + len, Item::Mention { targets, plural, start: i, end: i + len });
                    i += len;
                }
                None => i += 1,
            }
        }
        self.spans.sort_by_key(|s| s.start);
    }

    /// The one table every mention can refer to; a table named outright wins over one reached
    /// only through its columns.
    fn base_table(&mut self) -> Result<usize, String> {
        let mentions: Vec<&Vec<Target>> = self
            .spans
            .iter()
            .filter_map(|s| match &s.item {
                Item::Mention { targets, .. } => Some(targets),
                _ => None,
            })
            .collect();
        if mentions.is_empty() {
            return Err("the question names no table or column I know".into());
        }
        let tables: BTreeSet<usize> = mentions
            .iter()
            .flat_map(|ts| {
                ts.iter().map(|t| match t {
                    Target::Table(ti) | Target::Column(ti, _) => *ti,
                })
            })
            .collect();
        let in_table = |ti: usize, t: &Target| matches!(t, Target::Table(x) | Target::Column(x, _) if *x == ti);
        let fits: Vec<usize> =
            tables.into_iter().filter(|ti| mentions.iter().all(|ts| ts.iter().any(|t| in_table(*ti, t)))).collect();
        let named: Vec<usize> =
            fits.iter().copied().filter(|ti| mentions.iter().any(|ts| ts.contains(&Target::Table(*ti)))).collect();
        let base = match (fits.as_slice(), named.as_slice()) {
            ([one], _) => *one,
            (_, [one]) => *one,
            ([], _) => return self.joined_base(&mentions_tables(&self.spans)),
            _ => return Err("the question could be about several tables".into()),
        };
        self.scope = vec![base];
        Ok(base)
    }

    /// The one table from which every mention is reached along foreign keys (many-to-one), so
    /// that counting or summing its rows through the joins counts each row once.
    fn joined_base(&mut self, mentions: &[BTreeSet<usize>]) -> Result<usize, String> {
        let candidates: BTreeSet<usize> = mentions.iter().flatten().copied().collect();
        let index = joins::table_index(self.catalog);
        let mut fitting = Vec::new();
        for b in candidates {
            let reach = joins::reachable(self.catalog, b, &index);
            if mentions.iter().all(|tables| tables.iter().any(|t| *t == b || reach.contains_key(t))) {
                fitting.push((b, reach));
            }
        }
        if fitting.len() > 1 {
            return Err("the question could be about several tables joined differently".into());
        }
        let Some((base, reach)) = fitting.pop() else {
            return Err("the question's words span tables that no foreign keys join".into());
        };
        let mut scope: Vec<usize> =
            mentions.iter().flatten().copied().filter(|t| *t != base && reach.contains_key(t)).collect();
        scope.sort();
        scope.dedup();
        scope.insert(0, base);
        self.scope = scope;
        self.reach = reach;
        Ok(base)
    }

    fn narrow_mentions(&mut self) {
        let scope = self.scope.clone();
        for s in &mut self.spans {
            if let Item::Mention { targets, .. } = &mut s.item {
                targets.retain(|t| matches!(t, Target::Table(x) | Target::Column(x, _) if scope.contains(x)));
            }
        }
    }

    /// "customer name" (table then its column) is the column; "country name" (a column then
    /// "name") is the column; "population density" where the second column's comment names the
    /// first is the second column.
    fn merge_mentions(&mut self) {
        let mut k = 0;
        while k + 1 < self.spans.len() {
            let (a, b) = (&self.spans[k], &self.spans[k + 1]);
            let adjacent = a.end == b.start;
            let merged = match (&a.item, &b.item) {
                (Item::Mention { targets: ta, .. }, Item::Mention { targets: tb, plural, .. }) if adjacent => {
                    // "customer city": a table then one of its columns; "product category": a table
                    // then a table it references.
                    let of_table = self.scope.iter().find_map(|x| {
                        if !ta.contains(&Target::Table(*x)) {
                            return None;
                        }
                        let cols: Vec<Target> = tb.iter().copied().filter(|t| matches!(t, Target::Column(ti, _) if ti == x)).collect();
                        if !cols.is_empty() {
                            return Some(cols);
                        }
                        let referenced: Vec<Target> = tb
                            .iter()
                            .copied()
                            .filter(|t| matches!(t, Target::Table(y) if y != x && self.catalog.tables[*x].references(&self.catalog.tables[*y])))
                            .collect();
                        (referenced.len() == 1).then_some(referenced)
                    });
                    let a_col = ta.iter().find_map(|t| match t {
                        Target::Column(ti, ci) => Some((*ti, *ci)),
                        _ => None,
                    });
                    let b_cols: Vec<Target> = tb.iter().copied().filter(|t| matches!(t, Target::Column(..))).collect();
                    if let Some(targets) = of_table {
                        Some((targets, *plural))
                    } else if let (Some((ti, ci)), [Target::Column(bt, bc)]) = (a_col, b_cols.as_slice()) {
                        let a_words: Vec<&String> = self.stems[a.start..a.end].iter().collect();
                        let comment_names_a =
                            (*bt, *bc) != (ti, ci) && a_words.iter().all(|s| self.vocab.comment_has(*bt, *bc, s));
                        comment_names_a.then(|| (vec![Target::Column(*bt, *bc)], *plural))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some((targets, plural)) = merged {
                let (start, end) = (self.spans[k].start, self.spans[k + 1].end);
                self.spans[k] = Span { start, end, item: Item::Mention { targets, plural, start, end } };
                self.spans.remove(k + 1);
                continue;
            }
            k += 1;
        }
        // "country name": a column (not a table) followed by the word "name".
        let mut k = 0;
        while k < self.spans.len() {
            let span_end = self.spans[k].end;
            let is_col = matches!(&self.spans[k].item, Item::Mention { targets, .. } if !targets.is_empty() && targets.iter().all(|t| matches!(t, Target::Column(..))));
            if is_col && matches!(w(&self.toks, span_end), "name" | "names") {
                if let Some(next) = self.spans.iter().position(|s| s.start == span_end) {
                    if self.spans[next].end != span_end + 1 {
                        k += 1;
                        continue;
                    }
                    self.spans.remove(next);
                }
                self.used[span_end] = true;
                let s = &mut self.spans[k];
                s.end += 1;
                if let Item::Mention { end, .. } = &mut s.item {
                    *end += 1;
                }
            }
            k += 1;
        }
    }

    /// Words of the question that are values in the table's text columns, looked up with one
    /// bounded query.
    fn values(&mut self, probe: &mut dyn Probe) -> Result<(), String> {
        // Values may include words that also name schema things ("United States" next to a
        // `state` table), but each must include a word nothing else explained.
        let in_mention: Vec<bool> = (0..self.toks.len())
            .map(|k| self.spans.iter().any(|s| matches!(s.item, Item::Mention { .. }) && s.start <= k && k < s.end))
            .collect();
        let probeable = |k: usize| self.toks[k].word().is_some() && (!self.used[k] || in_mention[k]);
        let mut candidates: Vec<(usize, usize, String)> = Vec::new();
        let mut i = 0;
        while i < self.toks.len() {
            if let Tok::Quoted(q) = &self.toks[i] {
                if self.free(i) {
                    candidates.push((i, i + 1, q.to_lowercase()));
                }
                i += 1;
                continue;
            }
            if !probeable(i) {
                i += 1;
                continue;
            }
            let run = (i..self.toks.len()).take_while(|&k| probeable(k)).count();
            for start in i..i + run {
                for end in start + 1..=(i + run).min(start + 4) {
                    let first = w(&self.toks, start);
                    let last = w(&self.toks, end - 1);
                    if is_stop_word(first) || is_stop_word(last) || (start..end).all(|k| self.used[k]) {
                        continue;
                    }
                    let phrase: Vec<&str> = (start..end).map(|k| w(&self.toks, k)).collect();
                    candidates.push((start, end, phrase.join(" ")));
                }
            }
            i += run;
        }
        if candidates.is_empty() {
            return Ok(());
        }
        const FREE_TEXT: &[&str] = &[
            "description",
            "abstract",
            "comment",
            "comments",
            "note",
            "notes",
            "body",
            "text",
            "url",
            "homepage",
            "email",
            "phone",
            "address",
            "password",
        ];
        let mut columns: Vec<ColRef> = Vec::new();
        for &ti in &self.scope {
            for (ci, c) in self.catalog.tables[ti].columns.iter().enumerate() {
                let words = &self.vocab.column_words(ti, ci);
                if c.is_text() && !words.iter().any(|w| FREE_TEXT.contains(&w.as_str()) || w.starts_with("address")) {
                    columns.push(ColRef { table: ti, column: ci });
                }
            }
        }
        columns.truncate(MAX_PROBE_COLUMNS);
        if columns.is_empty() {
            return Ok(());
        }
        let phrases: BTreeSet<&str> = candidates.iter().map(|(_, _, p)| p.as_str()).collect();
        let array = phrases.iter().map(|p| super::query::literal(p)).collect::<Vec<_>>().join(", ");
        let parts: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let table = &self.catalog.tables[c.table];
                let col = quote_ident(&table.columns[c.column].name);
                format!(
                    "(SELECT DISTINCT {i} AS c, {col}::text AS v FROM {} WHERE lower({col}::text) = ANY(ARRAY[{array}]) LIMIT {PROBE_ROW_LIMIT})",
                    table.qualified_name()
                )
            })
            .collect();
        let sql = parts.join(" UNION ALL ");
        let rows = probe.query(&sql).map_err(|e| format!("looking up values failed: {e}"))?;
        // phrase -> (column, stored value)
        let mut found: Vec<(String, ColRef, String)> = Vec::new();
        for row in &rows.rows {
            let i = row.first().and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
            let column = i.and_then(|i| columns.get(usize::try_from(i).ok()?));
            let value = row.get(1).and_then(|v| v.as_str());
            if let (Some(column), Some(value)) = (column, value) {
                found.push((value.to_lowercase(), *column, value.to_string()));
            }
        }
        // Longest phrases first; each token used once.
        candidates.sort_by_key(|(s, e, _)| (std::cmp::Reverse(e - s), *s));
        let mut claimed = vec![false; self.toks.len()];
        for (start, end, phrase) in candidates {
            if (start..end).any(|k| claimed[k] || (self.used[k] && !in_mention[k])) {
                continue;
            }
            let hits: Vec<&(String, ColRef, String)> = found.iter().filter(|(p, _, _)| *p == phrase).collect();
            if hits.is_empty() {
                continue;
            }
            let mut cols: Vec<ColRef> = hits.iter().map(|(_, c, _)| *c).collect();
            cols.sort();
            cols.dedup();
            // A column named right before the value ("the city of New York") decides.
            let before = self.spans.iter().position(|s| {
                (s.end == start || (s.end + 1 == start && matches!(w(&self.toks, s.end), "of" | "is" | "named" | "called" | "=")))
                    && matches!(&s.item, Item::Mention { targets, .. } if targets.iter().any(|t| matches!(t, Target::Column(ti, ci) if cols.contains(&ColRef { table: *ti, column: *ci }))))
            });
            let column = match (cols.as_slice(), before) {
                (_, Some(si)) => {
                    let Item::Mention { targets, .. } = &self.spans[si].item else { continue };
                    let c = targets.iter().find_map(|t| match t {
                        Target::Column(ti, ci) if cols.contains(&ColRef { table: *ti, column: *ci }) => {
                            Some(ColRef { table: *ti, column: *ci })
                        }
                        _ => None,
                    });
                    let Some(c) = c else { continue };
                    let (s, e) = (self.spans[si].start, start);
                    self.spans.remove(si);
                    self.mark(s, e);
                    c
                }
                ([one], None) => *one,
                _ => return Err(format!("\"{phrase}\" is a value of several columns")),
            };
            let Some((_, _, stored)) = hits.iter().find(|(_, c, _)| *c == column) else { continue };
            if self.spans.iter().any(|s| s.start < start && s.end > start || s.start < end && s.end > end) {
                // The value would split a schema term; not a value here.
                continue;
            }
            self.spans.retain(|s| s.end <= start || s.start >= end);
            self.mark(start, end);
            for c in &mut claimed[start..end] {
                *c = true;
            }
            // "Italian food": a following word of the column's name belongs to the value.
            let col_stems: Vec<String> =
                self.vocab.column_words(column.table, column.column).iter().map(|x| stem(x)).collect();
            if self.free(end) && col_stems.contains(&self.stems[end]) {
                self.mark(end, end + 1);
            }
            self.filters.push((start, Filter::Value { column, value: stored.clone(), mode: self.mode }));
        }
        Ok(())
    }

    /// The column a mention names: one of the base table's, else the only one among the joined
    /// tables'.
    fn column_of(&self, base: usize, targets: &[Target]) -> Option<ColRef> {
        let of = |want_base: bool| {
            targets.iter().filter_map(move |t| match t {
                Target::Column(ti, ci) if (*ti == base) == want_base => Some(ColRef { table: *ti, column: *ci }),
                _ => None,
            })
        };
        if let Some(c) = of(true).next() {
            return Some(c);
        }
        let mut joined = of(false);
        match (joined.next(), joined.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }

    /// A joined table (not the base) that a mention names as a whole.
    fn entity_of(&self, base: usize, targets: &[Target]) -> Option<usize> {
        let mut tables = targets.iter().filter_map(|t| match t {
            Target::Table(ti) if *ti != base => Some(*ti),
            _ => None,
        });
        match (tables.next(), tables.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
    }

    /// Grouping by the rows of a joined table: its label and key.
    fn entity_group(&self, table: usize) -> Result<GroupKey, String> {
        let t = &self.catalog.tables[table];
        let label = label_column(self.vocab, table, t).map(|ci| ColRef { table, column: ci });
        let key = key_column(self.vocab, table, t).map(|ci| ColRef { table, column: ci });
        match (label, key) {
            (Some(label), Some(key)) => Ok(GroupKey::Entity { label, key }),
            (Some(c), None) | (None, Some(c)) => Ok(GroupKey::Column(c)),
            (None, None) => Err(format!("{} has no name or key column to group by", t.name)),
        }
    }

    /// The mention is a money word ("revenue"): it must name one column among the tables reached.
    fn money_column(&self, items: &[(usize, usize, Item)], k: usize) -> Option<Result<ColRef, String>> {
        let (start, end, Item::Mention { targets, .. }) = items.get(k)? else { return None };
        if end - start != 1 || !self.vocab.is_money_word(w(&self.toks, *start)) {
            return None;
        }
        Some(match targets.as_slice() {
            [Target::Column(ti, ci)] => Ok(ColRef { table: *ti, column: *ci }),
            _ => Err(format!("\"{}\" could mean several amounts", w(&self.toks, *start))),
        })
    }

    fn is_numeric(&self, c: ColRef) -> bool {
        self.catalog.tables.get(c.table).and_then(|t| t.columns.get(c.column)).is_some_and(|c| c.is_numeric())
    }

    fn is_temporal(&self, c: ColRef) -> bool {
        self.catalog.tables.get(c.table).and_then(|t| t.columns.get(c.column)).is_some_and(|c| c.is_temporal())
    }

    /// The date column time phrases refer to: one named in the question, else the only one.
    fn date_column(&self, base: usize, named: &[ColRef]) -> Result<ColRef, String> {
        if let Some(c) = named.iter().find(|c| self.is_temporal(**c)) {
            return Ok(*c);
        }
        let table = &self.catalog.tables[base];
        let temporal: Vec<usize> =
            table.columns.iter().enumerate().filter(|(_, c)| c.is_temporal()).map(|(i, _)| i).collect();
        match temporal.as_slice() {
            [one] => Ok(ColRef { table: base, column: *one }),
            [] => Err(format!("{} has no date column for the time in the question", table.name)),
            _ => Err(format!("{} has several date columns; name the one you mean", table.name)),
        }
    }

    /// A numeric column holding years (`year`), which "in 2021" and "each year" mean first.
    fn year_column(&self, base: usize) -> Option<ColRef> {
        let columns = self.catalog.tables.get(base)?.columns.len();
        (0..columns)
            .find(|&ci| self.vocab.column_words(base, ci).last().is_some_and(|l| l == "year"))
            .map(|ci| ColRef { table: base, column: ci })
            .filter(|c| self.is_numeric(*c))
    }

    fn build(mut self, base: usize) -> Result<Parsed, String> {
        self.spans.sort_by_key(|s| s.start);
        let items: Vec<(usize, usize, Item)> = self.spans.iter().map(|s| (s.start, s.end, s.item.clone())).collect();
        let mut q = Query {
            table: base,
            filters: Vec::new(),
            groups: Vec::new(),
            measures: Vec::new(),
            outputs: Vec::new(),
            distinct: false,
            order: None,
            limit: None,
            joins: Vec::new(),
            ratio: None,
        };
        let mut subject_table: Option<(usize, bool)> = None; // (position, plural)
        let mut subject_col: Option<ColRef> = None;
        // A joined table whose rows are what the question ranks or groups ("top 5 customers by ...").
        let mut subject_entity: Option<usize> = None;
        // Joined tables named only to say where a filter's value is ("orders from customers in London").
        let mut context_entities: Vec<usize> = Vec::new();
        let mut ratio_cue: Option<(usize, bool)> = None;
        // Money words are a sum of the one amount column among the tables reached.
        let money: Vec<Option<ColRef>> =
            (0..items.len()).map(|k| self.money_column(&items, k).transpose()).collect::<Result<_, _>>()?;
        let mut subject_plural = true;
        let mut direction: Option<bool> = None;
        let mut alphabetical = false;
        let mut sup_without_key: Option<bool> = None;
        let mut top: Option<(bool, u64)> = None;
        let mut named_columns: Vec<ColRef> = Vec::new();
        // Columns right before a comparison: (end token, column).
        let mut column_ends: Vec<(usize, ColRef)> = Vec::new();
        // Columns named outside any cue, by the token after them: shown as outputs unless a
        // comparison or time phrase claims them.
        let mut loose: Vec<(usize, ColRef)> = Vec::new();
        let mut subject_col_end = usize::MAX;

        let mention = |k: usize| -> Option<(&Vec<Target>, bool)> {
            match items.get(k) {
                Some((_, _, Item::Mention { targets, plural, .. })) => Some((targets, *plural)),
                _ => None,
            }
        };
        let mut k = 0;
        while k < items.len() {
            let (_, end, item) = &items[k];
            match item {
                Item::Cue(Cue::Count) => {
                    let mut j = k + 1;
                    let mut distinct = false;
                    if matches!(items.get(j), Some((_, _, Item::Cue(Cue::Distinct)))) {
                        distinct = true;
                        j += 1;
                    }
                    let Some((targets, _)) = mention(j) else {
                        return Err("\"how many\" / \"number of\" is not followed by what to count".into());
                    };
                    if targets.contains(&Target::Table(base)) && !distinct {
                        push_measure(&mut q, Measure { agg: Agg::Count, column: None });
                        let (start, plural) = (items[j].0, mention(j).is_some_and(|(_, p)| p));
                        subject_table.get_or_insert((start, plural));
                    } else if let Some(c) = self.column_of(base, targets).filter(|c| !self.is_numeric(*c)) {
                        // "how many cities": the distinct values of a text column.
                        push_measure(&mut q, Measure { agg: Agg::CountDistinct, column: Some(c) });
                    } else {
                        return Err("cannot tell what to count".into());
                    }
                    k = j + 1;
                    continue;
                }
                Item::Cue(Cue::Agg(agg)) => {
                    // "total number of" is a count; "total <numeric column>" is a sum.
                    let Some((targets, _)) = mention(k + 1) else {
                        return Err("an aggregate is not followed by a column".into());
                    };
                    // Sums and averages of a joined table's column would count its rows once per
                    // base row.
                    let summable = |c: ColRef| c.table == base || matches!(agg, Agg::Min | Agg::Max);
                    let how_much = w(&self.toks, items[k].0) == "how";
                    match self.column_of(base, targets) {
                        Some(c) if self.is_numeric(c) && summable(c) && items[k + 1].0 == *end => {
                            push_measure(&mut q, Measure { agg: *agg, column: Some(c) });
                            named_columns.push(c);
                        }
                        Some(c) if matches!(agg, Agg::Min | Agg::Max) && self.is_temporal(c) => {
                            push_measure(&mut q, Measure { agg: *agg, column: Some(c) });
                        }
                        _ if *agg == Agg::Sum && !how_much && targets.contains(&Target::Table(base)) => {
                            push_measure(&mut q, Measure { agg: Agg::Count, column: None });
                        }
                        _ => return Err("an aggregate applies to a column that is not numeric".into()),
                    }
                    k += 2;
                    continue;
                }
                Item::Cue(Cue::Sup(desc)) => {
                    match items.get(k + 1).map(|x| &x.2) {
                        Some(Item::Cue(Cue::Count)) => {
                            let Some((targets, _)) = mention(k + 2) else {
                                return Err("\"most\" is not followed by what to count".into());
                            };
                            if !targets.contains(&Target::Table(base)) {
                                return Err("cannot tell what to count".into());
                            }
                            let m = push_measure(&mut q, Measure { agg: Agg::Count, column: None });
                            q.order = Some((OrderKey::Measure(m), *desc));
                            k += 3;
                            continue;
                        }
                        Some(Item::Cue(Cue::Agg(agg))) => {
                            let Some((targets, _)) = mention(k + 2) else {
                                return Err("an aggregate is not followed by a column".into());
                            };
                            let summable = |c: &ColRef| c.table == base || matches!(agg, Agg::Min | Agg::Max);
                            let Some(c) = self.column_of(base, targets).filter(|c| self.is_numeric(*c) && summable(c))
                            else {
                                return Err("an aggregate applies to a column that is not numeric".into());
                            };
                            let m = push_measure(&mut q, Measure { agg: *agg, column: Some(c) });
                            q.order = Some((OrderKey::Measure(m), *desc));
                            k += 3;
                            continue;
                        }
                        Some(Item::Mention { targets, plural, .. }) => {
                            if let Some(c) = money[k + 1].filter(|c| c.table == base) {
                                // "the most revenue": the groups ranked by their sum.
                                let m = push_measure(&mut q, Measure { agg: Agg::Sum, column: Some(c) });
                                q.order = Some((OrderKey::Measure(m), *desc));
                                k += 2;
                                continue;
                            }
                            let targets = targets.clone();
                            let col =
                                self.column_of(base, &targets).filter(|c| self.is_numeric(*c) || self.is_temporal(*c));
                            let followed_by_of_table = matches!(w(&self.toks, items[k + 1].1), "of" | "among")
                                && matches!(mention(k + 2), Some((t, _)) if t.contains(&Target::Table(base)));
                            if let Some(c) = col {
                                named_columns.push(c);
                                if followed_by_of_table
                                    || (subject_table.is_none() && subject_col.is_none() && loose.is_empty())
                                {
                                    push_measure(
                                        &mut q,
                                        Measure { agg: if *desc { Agg::Max } else { Agg::Min }, column: Some(c) },
                                    );
                                } else {
                                    q.order = Some((OrderKey::Column(c), *desc));
                                }
                                k += 2;
                                continue;
                            }
                            if targets.contains(&Target::Table(base)) {
                                if subject_col.is_some() || subject_entity.is_some() {
                                    // "which street has the most restaurants"
                                    let m = push_measure(&mut q, Measure { agg: Agg::Count, column: None });
                                    q.order = Some((OrderKey::Measure(m), *desc));
                                } else {
                                    // "the longest rivers": the column the adjective measures, or a key
                                    // named elsewhere ("ordered by ...").
                                    sup_without_key = Some(*desc);
                                    if let Some(c) = self.adjective_column(base, w(&self.toks, items[k].0)) {
                                        q.order = Some((OrderKey::Column(c), *desc));
                                        named_columns.push(c);
                                    }
                                    subject_table.get_or_insert((items[k + 1].0, *plural));
                                }
                                k += 2;
                                continue;
                            }
                            return Err("a superlative applies to something that cannot be ordered".into());
                        }
                        _ => return Err("a superlative is not followed by what it ranks".into()),
                    }
                }
                Item::Cue(Cue::Top(desc, n)) => {
                    top = Some((*desc, *n));
                }
                Item::Cue(Cue::Each) | Item::Cue(Cue::By) => {
                    let by = matches!(item, Item::Cue(Cue::By));
                    match items.get(k + 1).map(|x| &x.2) {
                        Some(Item::Mention { targets, .. }) => {
                            let targets = targets.clone();
                            if let (true, Some(c)) = (by, money[k + 1].filter(|c| c.table == base)) {
                                // "top 5 customers by revenue"
                                let m = push_measure(&mut q, Measure { agg: Agg::Sum, column: Some(c) });
                                q.order = Some((OrderKey::Measure(m), true));
                                k += 2;
                                continue;
                            }
                            if let Some(t) = self
                                .column_of(base, &targets)
                                .is_none()
                                .then(|| self.entity_of(base, &targets))
                                .flatten()
                            {
                                // "by product category": the rows of a joined table.
                                q.groups.push(self.entity_group(t)?);
                                k += 2;
                                continue;
                            }
                            let Some(c) = self.column_of(base, &targets) else {
                                return Err("grouping by a whole table is not something the offline engine does".into());
                            };
                            if by
                                && self.is_numeric(c)
                                && q.groups.is_empty()
                                && q.measures.is_empty()
                                && self.year_column(base) != Some(c)
                            {
                                // "top 5 restaurants by rating"
                                q.order = Some((OrderKey::Column(c), true));
                                named_columns.push(c);
                            } else if self.year_column(base) == Some(c) || !self.is_temporal(c) {
                                q.groups.push(GroupKey::Column(c));
                                named_columns.push(c);
                            } else {
                                return Err("grouping by a raw date: ask per day, week, month or year".into());
                            }
                            // "by X and Y"
                            let mut j = k + 2;
                            while matches!(items.get(j), Some((s, _, Item::Mention { .. })) if w(&self.toks, *s - 1) == "and" && items[j - 1].1 + 1 == *s)
                                && q.groups.len() == 1
                            {
                                let Some((t2, _)) = mention(j) else { break };
                                let Some(c2) = self.column_of(base, t2) else { break };
                                q.groups.push(GroupKey::Column(c2));
                                j += 1;
                            }
                            k = j;
                            continue;
                        }
                        Some(Item::Cue(Cue::Count)) | Some(Item::Cue(Cue::Agg(_))) if by => {
                            // "by number of customers": the order of a grouped answer.
                            let (consumed, m) = self.measure_at(base, &items, k + 1, &mut q)?;
                            q.order = Some((OrderKey::Measure(m), true));
                            k = k + 1 + consumed;
                            continue;
                        }
                        _ => {
                            // "per month", "each year"
                            let next = items.get(k).map(|x| x.1).unwrap_or(0);
                            if let Some(unit) = unit_of(w(&self.toks, next)) {
                                self.mark(next, next + 1);
                                let key = match (unit, self.year_column(base)) {
                                    (Unit::Year, Some(c)) => GroupKey::Column(c),
                                    _ => GroupKey::Bucket(self.date_column(base, &named_columns)?, unit),
                                };
                                q.groups.push(key);
                                k += 1;
                                continue;
                            }
                            // Left unexplained: a column's comment may account for it
                            // ("people per square kilometer"), else the question declines.
                            for u in &mut self.used[items[k].0..items[k].1] {
                                *u = false;
                            }
                        }
                    }
                }
                Item::Cue(Cue::OrderBy) => match items.get(k + 1).map(|x| &x.2) {
                    Some(Item::Mention { targets, .. }) => {
                        let targets = targets.clone();
                        let Some(c) = self.column_of(base, &targets) else { return Err("ordering by a table".into()) };
                        q.order = Some((OrderKey::Column(c), direction.unwrap_or(false)));
                        named_columns.push(c);
                        k += 2;
                        continue;
                    }
                    Some(Item::Cue(Cue::Count)) | Some(Item::Cue(Cue::Agg(_))) => {
                        let (consumed, m) = self.measure_at(base, &items, k + 1, &mut q)?;
                        q.order = Some((OrderKey::Measure(m), direction.unwrap_or(false)));
                        k = k + 1 + consumed;
                        continue;
                    }
                    _ => return Err("\"ordered by\" is not followed by a column".into()),
                },
                Item::Cue(Cue::Dir(desc)) => direction = Some(*desc),
                Item::Cue(Cue::Alphabetical) => alphabetical = true,
                Item::Cue(Cue::Distinct) => q.distinct = true,
                Item::Cue(Cue::Range(desc, until)) => {
                    direction = Some(*desc);
                    if let Some((start, _, Item::Mention { targets, .. })) = items.get(k + 1) {
                        if let Some(c) = self.column_of(base, targets).filter(|_| start <= until) {
                            q.order = Some((OrderKey::Column(c), *desc));
                            named_columns.push(c);
                            k += 2;
                            continue;
                        }
                    }
                }
                Item::Cue(Cue::Ratio(percent)) => ratio_cue = Some((items[k].0, *percent)),
                Item::Mention { targets, plural, .. } => {
                    let col = self.column_of(base, targets);
                    let is_table = targets.contains(&Target::Table(base));
                    let entity = if col.is_none() && !is_table { self.entity_of(base, targets) } else { None };
                    if let Some(c) = money[k] {
                        // "revenue per month": a sum.
                        if c.table != base {
                            return Err("an amount on a joined table would be counted once per row".into());
                        }
                        push_measure(&mut q, Measure { agg: Agg::Sum, column: Some(c) });
                        named_columns.push(c);
                    } else if let Some(t) = entity {
                        if subject_entity.is_none()
                            && subject_col.is_none()
                            && subject_table.is_none()
                            && q.measures.is_empty()
                            && loose.is_empty()
                        {
                            subject_entity = Some(t);
                            subject_plural = *plural;
                        } else {
                            context_entities.push(t);
                        }
                    } else if is_table && subject_table.is_none() {
                        subject_table = Some((items[k].0, *plural));
                        subject_plural = *plural;
                    } else if let Some(c) = col {
                        column_ends.push((*end, c));
                        named_columns.push(c);
                        if subject_col.is_none() && subject_table.is_none() && q.measures.is_empty() && loose.is_empty()
                        {
                            subject_col = Some(c);
                            subject_col_end = *end;
                            subject_plural = *plural;
                        } else {
                            loose.push((*end, c));
                        }
                    } else if !is_table {
                        return Err("a word names something outside the table".into());
                    }
                }
            }
            k += 1;
        }

        // Bucket words standing alone ("monthly average price").
        for i in 0..self.toks.len() {
            if self.free(i)
                && matches!(
                    w(&self.toks, i),
                    "daily" | "weekly" | "monthly" | "quarterly" | "yearly" | "annual" | "annually"
                )
            {
                let unit = unit_of(w(&self.toks, i)).unwrap_or(Unit::Month);
                let key = match (unit, self.year_column(base)) {
                    (Unit::Year, Some(c)) => GroupKey::Column(c),
                    _ => GroupKey::Bucket(self.date_column(base, &named_columns)?, unit),
                };
                q.groups.push(key);
                self.mark(i, i + 1);
            }
        }

        let mut filters: Vec<(usize, Filter)> = Vec::new();
        // Comparisons attach to the column just before them.
        for (pos, op, value) in std::mem::take(&mut self.comparisons) {
            let col = column_ends
                .iter()
                .filter(|(end, _)| {
                    *end == pos || (*end + 1 == pos && matches!(w(&self.toks, *end), "is" | "was" | "of"))
                })
                .copied()
                .next_back();
            let Some((col_end, col)) = col.filter(|(_, c)| self.is_numeric(*c)) else {
                return Err("a comparison does not follow a numeric column".into());
            };
            loose.retain(|(end, _)| *end != col_end);
            if subject_col_end == col_end {
                subject_col = None;
            }
            filters.push((pos, Filter::Number { column: col, op, value }));
        }
        filters.append(&mut self.filters);
        for (pos, phrase) in std::mem::take(&mut self.time) {
            let filter = match phrase {
                TimePhrase::Year(y) => match self.year_column(base) {
                    Some(c) => Filter::Year { column: c, year: y, numeric: true },
                    None => Filter::Year { column: self.date_column(base, &named_columns)?, year: y, numeric: false },
                },
                TimePhrase::Recent(n, unit) => {
                    Filter::Recent { column: self.date_column(base, &named_columns)?, n, unit }
                }
                TimePhrase::Date(op, date) => {
                    Filter::Date { column: self.date_column(base, &named_columns)?, op, date }
                }
            };
            if let Filter::Year { column, .. } | Filter::Recent { column, .. } | Filter::Date { column, .. } = &filter {
                loose.retain(|(_, c)| c != column);
                if subject_col == Some(*column) {
                    subject_col = None;
                }
            }
            filters.push((pos, filter));
        }
        filters.sort_by_key(|(pos, _)| *pos);
        if let Some((cue, percent)) = ratio_cue {
            let (ratio, shared) = split_ratio(cue, self.ratio_separator, percent, filters)?;
            q.ratio = Some(ratio);
            filters = shared;
        } else if self.ratio_separator.is_some() {
            return Err("internal: a ratio separator without a ratio".into());
        }
        q.filters = filters.into_iter().map(|(_, f)| f).collect();
        // A joined table named next to a value is where the value is; named otherwise, its role
        // is unclear.
        let filtered_tables: Vec<usize> = q
            .filters
            .iter()
            .chain(q.ratio.iter().flat_map(|r| r.numerator.iter().chain(&r.denominator)))
            .map(|f| filter_column(f).table)
            .collect();
        if context_entities.iter().any(|t| !filtered_tables.contains(t)) {
            return Err("the question names a related table without saying how it is used".into());
        }
        // A date column named only to say which one the time phrase means is not an output.
        let filter_cols: Vec<ColRef> = q
            .filters
            .iter()
            .filter_map(|f| match f {
                Filter::Year { column, .. } | Filter::Recent { column, .. } | Filter::Date { column, .. } => {
                    Some(*column)
                }
                _ => None,
            })
            .collect();
        loose.retain(|(_, c)| !filter_cols.contains(c) || !self.is_temporal(*c));
        for (_, c) in loose {
            if !q.outputs.contains(&c) && subject_col != Some(c) {
                q.outputs.push(c);
            }
        }

        self.explain_by_comments(&q, &named_columns);
        if let Some(i) = (0..self.toks.len()).find(|&i| self.free(i) && !self.ignorable(i)) {
            let word = match &self.toks[i] {
                Tok::Word(x) => x.clone(),
                Tok::Quoted(x) => x.clone(),
                Tok::Num(v) => super::query::number(*v),
                Tok::Date(d) => d.clone(),
                Tok::Sym(s) => s.clone(),
                Tok::Break => String::new(),
            };
            return Err(format!("I don't know what \"{word}\" refers to in this database"));
        }

        // Shape.
        if q.ratio.is_some() {
            if q.measures.iter().any(|m| *m != Measure { agg: Agg::Count, column: None })
                || q.order.is_some()
                || top.is_some()
                || subject_table.is_none()
                || !q.outputs.is_empty()
            {
                return Err("a ratio of counts mixed with other measures or an order".into());
            }
            q.measures = vec![Measure { agg: Agg::Ratio, column: None }];
        }
        let table = &self.catalog.tables[base];
        let label = label_column(self.vocab, base, table).map(|ci| ColRef { table: base, column: ci });
        if let Some((desc, n)) = top {
            q.limit = Some(n);
            if q.order.is_none() && sup_without_key.is_none() && direction.is_none() {
                return Err("\"top N\" without what to rank by".into());
            }
            if let Some((key, _)) = q.order {
                q.order = Some((key, direction.unwrap_or(desc)));
            }
        }
        if let Some(desc) = sup_without_key {
            if q.order.is_none() {
                return Err("a superlative without the column it ranks by".into());
            }
            if let Some((key, _)) = q.order {
                q.order = Some((key, desc));
            }
        }
        if let (Some(desc), Some((key, _))) = (direction, q.order) {
            q.order = Some((key, desc));
        }
        if alphabetical {
            let key = subject_col.or(q.outputs.first().copied()).or(label).ok_or("nothing to sort alphabetically")?;
            if q.order.is_some() {
                return Err("two orders".into());
            }
            q.order = Some((OrderKey::Column(key), false));
        }

        if let Some(t) = subject_entity {
            // "top 5 customers by number of orders": the joined table's rows are the groups.
            if q.measures.is_empty() {
                return Err("a related table's rows listed without a measure".into());
            }
            let g = self.entity_group(t)?;
            if !q.groups.contains(&g) {
                q.groups.insert(0, g);
            }
        }
        if !q.measures.is_empty() || !q.groups.is_empty() {
            if let Some(c) = subject_col {
                // "which street has the most restaurants", "top 5 countries by number of customers"
                if !q.groups.contains(&GroupKey::Column(c)) {
                    q.groups.insert(0, GroupKey::Column(c));
                }
            }
            // Columns asked for again ("Return the status and number of ...") must be groups.
            for c in &q.outputs {
                if !q.groups.contains(&GroupKey::Column(*c)) {
                    return Err("the question asks for a column next to an aggregate that is not grouped".into());
                }
            }
            if q.measures.is_empty() {
                // "orders per month": rows counted per group.
                if subject_table.is_none() || !q.outputs.is_empty() {
                    return Err("a grouping without what to count or aggregate".into());
                }
                q.measures.push(Measure { agg: Agg::Count, column: None });
            }
            if q.groups.is_empty() {
                if q.order.is_some() || q.limit.is_some() {
                    return Err("an order or limit on a single aggregate".into());
                }
                if subject_table.is_none() && q.measures.iter().all(|m| m.column.is_none()) {
                    return Err("cannot tell what to count".into());
                }
            } else {
                let time_like = q.groups.iter().all(|g| {
                    matches!(g, GroupKey::Bucket(..)) || Some(*g) == self.year_column(base).map(GroupKey::Column)
                });
                if q.order.is_none() && !time_like {
                    q.order = Some((OrderKey::Measure(0), true));
                }
                if q.limit.is_none()
                    && sup_order_is_singular(&q, subject_plural, subject_col.is_some() || subject_entity.is_some())
                {
                    q.limit = Some(1);
                }
            }
        } else {
            // A list of rows.
            let mut outputs = Vec::new();
            if let Some(c) = subject_col {
                outputs.push(c);
                // "which cities ..." lists each city once; "names of restaurants" lists rows.
                q.distinct = Some(c) != label;
            }
            if subject_col.is_none() && q.outputs.is_empty() {
                let l = label.ok_or_else(|| format!("{} has no name column to list", table.name))?;
                outputs.push(l);
                if let Some(key) = key_column(self.vocab, base, table) {
                    if !q.distinct {
                        outputs.push(ColRef { table: base, column: key });
                    }
                }
            }
            outputs.extend(q.outputs.iter().copied());
            if let Some((OrderKey::Column(c), _)) = q.order {
                if !outputs.contains(&c) {
                    outputs.push(c);
                }
                if q.limit.is_none() && !subject_plural && subject_col.is_none() {
                    q.limit = Some(1);
                }
                if q.limit.is_none() && subject_col.is_some() && !subject_plural {
                    q.limit = Some(1);
                }
            }
            if subject_table.is_none() && subject_col.is_none() {
                return Err("the question does not say which rows to list".into());
            }
            outputs.dedup();
            q.outputs = outputs;
        }
        if let (Some((OrderKey::Column(c), _)), true) = (q.order, q.is_grouped()) {
            if !q.groups.iter().any(|g| matches!(g, GroupKey::Column(x) | GroupKey::Bucket(x, _) | GroupKey::Entity { label: x, .. } if *x == c)) {
                return Err("ordering groups by a column that is not grouped".into());
            }
        }
        q.joins = self.joins_for(&q)?;
        Ok(Parsed { query: q })
    }

    /// The joins that reach every table the query's columns are in, each hop once.
    fn joins_for(&self, q: &Query) -> Result<Vec<joins::Hop>, String> {
        let mut columns: Vec<ColRef> = q.outputs.clone();
        columns.extend(q.measures.iter().filter_map(|m| m.column));
        for g in &q.groups {
            match g {
                GroupKey::Column(c) | GroupKey::Bucket(c, _) => columns.push(*c),
                GroupKey::Entity { label, key } => columns.extend([*label, *key]),
            }
        }
        columns.extend(
            q.filters
                .iter()
                .chain(q.ratio.iter().flat_map(|r| r.numerator.iter().chain(&r.denominator)))
                .map(filter_column),
        );
        if let Some((OrderKey::Column(c), _)) = q.order {
            columns.push(c);
        }
        let mut tables: Vec<usize> = columns.iter().map(|c| c.table).filter(|t| *t != q.table).collect();
        tables.sort();
        tables.dedup();
        let mut hops: Vec<joins::Hop> = Vec::new();
        for t in tables {
            match self.reach.get(&t) {
                Some(Reach::Path(path)) => {
                    for hop in path {
                        if !hops.contains(hop) {
                            hops.push(hop.clone());
                        }
                    }
                }
                Some(Reach::Ambiguous) => {
                    return Err(format!("{} is joined in two different ways", self.catalog.tables[t].name))
                }
                None => return Err("a column outside the tables the question reaches".into()),
            }
        }
        // Each table is joined after the table it is reached from.
        let mut ordered: Vec<joins::Hop> = Vec::new();
        while !hops.is_empty() {
            let Some(i) = hops.iter().position(|h| h.from == q.table || ordered.iter().any(|o| o.to == h.from)) else {
                return Err("internal: a join path does not start at the base table".into());
            };
            ordered.push(hops.remove(i));
        }
        Ok(ordered)
    }

    /// The one numeric column a superlative adjective measures ("longest" a length).
    fn adjective_column(&self, base: usize, adjective: &str) -> Option<ColRef> {
        let nouns: &[&str] = match adjective {
            "longest" | "shortest" => &["length", "long"],
            "tallest" | "highest" | "lowest" => &["height", "altitude", "elevation"],
            "largest" | "biggest" | "smallest" => &["area", "size"],
            _ => return None,
        };
        let columns = self.catalog.tables.get(base)?.columns.len();
        let mut found = (0..columns).filter(|&ci| {
            self.vocab.column_words(base, ci).last().is_some_and(|l| nouns.contains(&l.as_str()))
                && self.is_numeric(ColRef { table: base, column: ci })
        });
        match (found.next(), found.next()) {
            (Some(ci), None) => Some(ColRef { table: base, column: ci }),
            _ => None,
        }
    }

    /// A measure phrase starting at item `k` ("number of customers", "total amount"): how many
    /// items it spans and its index in the query.
    fn measure_at(
        &mut self,
        base: usize,
        items: &[(usize, usize, Item)],
        k: usize,
        q: &mut Query,
    ) -> Result<(usize, usize), String> {
        let targets = match items.get(k + 1) {
            Some((_, _, Item::Mention { targets, .. })) => targets.clone(),
            _ => return Err("a measure without its column".into()),
        };
        let m = match &items[k].2 {
            Item::Cue(Cue::Count) if targets.contains(&Target::Table(base)) => {
                Measure { agg: Agg::Count, column: None }
            }
            Item::Cue(Cue::Agg(agg)) => {
                let c = self
                    .column_of(base, &targets)
                    .filter(|c| self.is_numeric(*c))
                    .ok_or("an aggregate of a column that is not numeric")?;
                Measure { agg: *agg, column: Some(c) }
            }
            _ => return Err("cannot tell what to count".into()),
        };
        Ok((2, push_measure(q, m)))
    }

    /// Words describing a used column in its comment ("in square kilometers" for an area whose
    /// comment says so) are accounted for.
    fn explain_by_comments(&mut self, q: &Query, named: &[ColRef]) {
        let mut used_cols: Vec<ColRef> = named.to_vec();
        used_cols.extend(q.outputs.iter().copied());
        used_cols.extend(q.measures.iter().filter_map(|m| m.column));
        for i in 0..self.toks.len() {
            if self.free(i) && self.toks[i].word().is_some() {
                let s = &self.stems[i];
                if used_cols.iter().any(|c| self.vocab.comment_has(c.table, c.column, s))
                    && !is_meaningful(w(&self.toks, i))
                {
                    self.used[i] = true;
                }
            }
        }
    }

    fn ignorable(&self, i: usize) -> bool {
        match &self.toks[i] {
            Tok::Break => true,
            Tok::Word(x) => is_stop_word(x),
            _ => false,
        }
    }
}

fn filter_column(f: &Filter) -> ColRef {
    match f {
        Filter::Value { column, .. }
        | Filter::Number { column, .. }
        | Filter::Year { column, .. }
        | Filter::Date { column, .. }
        | Filter::Recent { column, .. } => *column,
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
) -> Result<(Ratio, Vec<(usize, Filter)>), String> {
    let is_time = |f: &Filter| matches!(f, Filter::Year { .. } | Filter::Date { .. } | Filter::Recent { .. });
    let (mut numerator, mut denominator, mut shared) = (Vec::new(), Vec::new(), Vec::new());
    let mut after = Vec::new();
    for (pos, f) in filters {
        if is_time(&f) || pos < cue {
            shared.push((pos, f));
        } else if separator.is_none_or(|s| pos < s) {
            numerator.push(f);
        } else {
            after.push((pos, f));
        }
    }
    let mut numerator_columns: Vec<ColRef> = numerator.iter().map(filter_column).collect();
    numerator_columns.sort();
    numerator_columns.dedup();
    for (pos, f) in after {
        if numerator_columns.contains(&filter_column(&f)) {
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
    if !denominator.is_empty() {
        let mut denominator_columns: Vec<ColRef> = denominator.iter().map(filter_column).collect();
        denominator_columns.sort();
        denominator_columns.dedup();
        if denominator_columns != numerator_columns {
            return Err("the two parts of a ratio are filtered differently".into());
        }
    }
    shared.sort_by_key(|(pos, _)| *pos);
    Ok((Ratio { numerator, denominator, percent }, shared))
}

/// The tables each mention can refer to.
fn mentions_tables(spans: &[Span]) -> Vec<BTreeSet<usize>> {
    spans
        .iter()
        .filter_map(|s| match &s.item {
            Item::Mention { targets, .. } => Some(
                targets
                    .iter()
                    .map(|t| match t {
                        Target::Table(ti) | Target::Column(ti, _) => *ti,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Words that change a question's meaning and must never be explained away.
fn is_meaningful(word: &str) -> bool {
    matches!(
        word,
        "not"
            | "no"
            | "without"
            | "never"
            | "except"
            | "excluding"
            | "exclude"
            | "or"
            | "nor"
            | "neither"
            | "but"
            | "only"
            | "same"
            | "both"
            | "than"
            | "percent"
            | "ratio"
            | "each"
            | "by"
    )
}

fn is_plural(word: &str) -> bool {
    word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us") && !word.ends_with("is")
}

fn push_measure(q: &mut Query, m: Measure) -> usize {
    if let Some(i) = q.measures.iter().position(|x| *x == m) {
        return i;
    }
    q.measures.push(m);
    q.measures.len() - 1
}

/// "Which city has the most restaurants?" asks for one group.
fn sup_order_is_singular(q: &Query, subject_plural: bool, has_subject_col: bool) -> bool {
    has_subject_col && !subject_plural && q.order.is_some()
}
