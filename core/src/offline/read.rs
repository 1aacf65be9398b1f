//! Reading a question: every meaningful word must be claimed by a phrase the planner understands
//! (a cue such as "how many" or "top 5", a table, a column, a value found in the data, a number, a
//! time phrase) or be a word that only frames the question. The items read here are built into a
//! query by `build`; a word nobody claims makes the question decline.

use std::collections::{BTreeSet, HashMap};

use crate::catalog::{quote_ident, Catalog};

use super::joins::{self, Reach};
use super::query::{Agg, ColRef, Filter, GroupKey, MatchMode, Op, OrderKey, Query, Unit};
use super::schema::{key_column, label_column, Target, Vocab, SALE_VERBS};
use super::{Decline, Parsed, Probe};
use crate::lang::words::{
    date_at, is_free_text_word, is_stop_word, month_number, number_at, time_unit, year_of, TimeUnit,
};
use crate::lang::{stem, tokenize, Token as Tok};

/// At most this many text columns are looked up for values, in one bounded query.
const MAX_PROBE_COLUMNS: usize = 12;
/// Rows a value lookup may return.
const PROBE_ROW_LIMIT: usize = 20;
const MAX_TERM_WORDS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cue {
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
    /// "never", "have not", "without": rows no row of the table named next refers to.
    Never,
    /// "average order value": the average over the table's rows of what each is worth, summed
    /// from the rows that refer to it (the mention that follows is the summed column).
    PerRow(usize),
    /// "most common", "most popular": the values of the column named next, by how many rows have
    /// each (true: most first).
    Common(bool),
    /// "days between", "how long": the time between the two date columns of the mention that
    /// follows (from the first to the second), in this unit.
    Elapsed(super::query::Elapsed),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    Cue(Cue),
    Mention { targets: Vec<Target>, plural: bool, start: usize, end: usize },
}

pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) item: Item,
}

pub(super) struct Parser<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) vocab: &'a Vocab<'a, 'a>,
    pub(super) toks: Vec<Tok>,
    pub(super) stems: Vec<String>,
    pub(super) used: Vec<bool>,
    pub(super) spans: Vec<Span>,
    pub(super) mode: MatchMode,
    /// Filters with the token where each was found.
    pub(super) filters: Vec<(usize, Filter)>,
    /// Time phrases waiting for the table's date column: (token, what).
    pub(super) time: Vec<(usize, TimePhrase)>,
    /// Comparisons waiting for their column: (first token, op, value).
    /// Comparisons waiting for their column: (first token, op, value, token after the number).
    pub(super) comparisons: Vec<(usize, Op, f64, usize)>,
    /// The tables the question may use: the base table first, then tables it reaches along
    /// foreign keys that the question names.
    pub(super) scope: Vec<usize>,
    /// How each joined table is reached from the base table.
    pub(super) reach: HashMap<usize, Reach>,
    /// Tables named after "never" / "without" (the rows that must not exist), with the token
    /// where the mention starts; they take no part in choosing the base table.
    pub(super) never: Vec<(usize, Vec<Target>)>,
    /// Tables besides the base whose event verbs ("placed") are accounted for.
    pub(super) event_tables: Vec<usize>,
    /// Where a ratio's second part starts ("to", "out of").
    pub(super) ratio_separator: Option<usize>,
}

#[derive(Debug, Clone)]
pub(super) enum TimePhrase {
    Year(i32),
    /// Several whole years, compared ("revenue in 2024 and 2025").
    Years(Vec<i32>),
    Recent(u32, Unit),
    Date(Op, String),
}

pub(crate) fn parse(vocab: &Vocab, question: &str, probe: &mut dyn Probe) -> Result<Parsed, Decline> {
    let catalog = vocab.catalog();
    let toks = tokenize(question);
    if toks.is_empty() {
        return Err(Decline::Empty);
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
        never: Vec::new(),
        event_tables: Vec::new(),
    };
    p.instructions();
    p.time_phrases();
    p.comparisons();
    p.cues();
    p.mentions();
    p.sales_phrases();
    p.row_values();
    p.elapsed_phrases();
    p.set_aside_never();
    let base = p.base_table()?;
    p.narrow_mentions();
    p.merge_mentions();
    p.values(probe)?;
    super::build::build(p, base)
}

pub(super) fn w(toks: &[Tok], i: usize) -> &str {
    toks.get(i).and_then(Tok::word).unwrap_or("")
}

/// Phrases that are cues, longest and most specific first (the first that matches wins).
const CUE_PHRASES: &[(&[&str], Cue)] = &[
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
    (&["most", "frequently", "used"], Cue::Common(true)),
    (&["most", "common"], Cue::Common(true)),
    (&["most", "frequent"], Cue::Common(true)),
    (&["most", "popular"], Cue::Common(true)),
    (&["most", "used"], Cue::Common(true)),
    (&["least", "common"], Cue::Common(false)),
    (&["least", "frequent"], Cue::Common(false)),
    (&["least", "popular"], Cue::Common(false)),
    (&["least", "used"], Cue::Common(false)),
    (&["most", "expensive"], Cue::Sup(true)),
    (&["least", "expensive"], Cue::Sup(false)),
    (&["most", "recent"], Cue::Sup(true)),
    (&["least", "recent"], Cue::Sup(false)),
    (&["cheapest"], Cue::Sup(false)),
    (&["priciest"], Cue::Sup(true)),
    (&["newest"], Cue::Sup(true)),
    (&["latest"], Cue::Sup(true)),
    (&["earliest"], Cue::Sup(false)),
    (&["never"], Cue::Never),
    (&["have", "not"], Cue::Never),
    (&["has", "not"], Cue::Never),
    (&["had", "not"], Cue::Never),
    (&["did", "not"], Cue::Never),
    (&["do", "not"], Cue::Never),
    (&["does", "not"], Cue::Never),
    (&["without", "any"], Cue::Never),
    (&["without"], Cue::Never),
    (&["with", "no"], Cue::Never),
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
    (&["combinations", "of"], Cue::Each),
    (&["combination", "of"], Cue::Each),
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

impl Parser<'_> {
    pub(super) fn mark(&mut self, start: usize, end: usize) {
        for u in &mut self.used[start..end.min(self.toks.len())] {
            *u = true;
        }
    }

    pub(super) fn free(&self, i: usize) -> bool {
        i < self.toks.len() && !self.used[i]
    }

    /// "among those with at least 10 ...": "among" belongs to the condition before `pos`.
    pub(super) fn explain_among(&mut self, pos: usize) {
        for i in pos.saturating_sub(4)..pos {
            if self.free(i) && w(&self.toks, i) == "among" {
                self.used[i] = true;
            }
        }
    }

    /// "compare", "versus": accounted for by years compared.
    pub(super) fn explain_comparing(&mut self) {
        for i in 0..self.toks.len() {
            if self.free(i)
                && matches!(w(&self.toks, i), "compare" | "compared" | "comparing" | "comparison" | "versus" | "vs")
            {
                self.used[i] = true;
            }
        }
    }

    /// Gives tokens back (a cue that turned out not to be one).
    pub(super) fn unmark(&mut self, start: usize, end: usize) {
        for u in &mut self.used[start..end.min(self.toks.len())] {
            *u = false;
        }
    }

    /// The word at token `i` ("" for other tokens or past the end).
    pub(super) fn word(&self, i: usize) -> &str {
        w(&self.toks, i)
    }

    /// The first token no phrase claimed that is not a framing word, as written.
    pub(super) fn first_unexplained(&self) -> Option<String> {
        let i = (0..self.toks.len()).find(|&i| self.free(i) && !self.ignorable(i))?;
        Some(match &self.toks[i] {
            Tok::Word(x) | Tok::Quoted(x) | Tok::Date(x) | Tok::Sym(x) => x.clone(),
            Tok::Num(v) => super::query::number(*v),
            Tok::Break => String::new(),
        })
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
                if let Some(unit) = time_unit(w(&self.toks, i + 1 + len)) {
                    if n >= 1.0 && n.fract() == 0.0 && n <= 100_000.0 {
                        self.time.push((i, TimePhrase::Recent(n as u32, unit)));
                        self.mark(i, i + 2 + len);
                        i = self.inclusive_note(i + 2 + len, Some((n, unit)));
                        continue;
                    }
                }
            }
            if let Some(end) = self.calendar_period(i) {
                i = end;
                continue;
            }
            if matches!(word.as_str(), "in" | "during" | "for" | "of") {
                let mut j = i + 1;
                if w(&self.toks, j) == "the" && w(&self.toks, j + 1) == "year" {
                    j += 2;
                }
                if let Some(first) = self.toks.get(j).and_then(year_of) {
                    // "in 2024 and 2025", "in 2024 vs in 2025": the years compared.
                    let mut years = vec![first];
                    let mut end = j + 1;
                    while matches!(w(&self.toks, end), "and" | "vs" | "versus" | "or" | "to") {
                        let at = if w(&self.toks, end + 1) == "in" { end + 2 } else { end + 1 };
                        match self.toks.get(at).and_then(year_of) {
                            Some(y) if !years.contains(&y) => {
                                years.push(y);
                                end = at + 1;
                            }
                            _ => break,
                        }
                    }
                    self.time
                        .push((i, if years.len() == 1 { TimePhrase::Year(first) } else { TimePhrase::Years(years) }));
                    self.mark(i, end);
                    i = end;
                    continue;
                }
            }
            // "between Jan 1, 2023 and Mar 31, 2023", "from 2023-01-01 to 2023-03-31": both days in.
            if let Some(end) = self.date_range(i) {
                i = self.inclusive_note(end, None);
                continue;
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
                if let Some((date, dlen)) = date_at(&self.toks, i + len) {
                    self.time.push((i, TimePhrase::Date(op, date)));
                    self.mark(i, i + len + dlen);
                    i += len + dlen;
                    continue;
                }
            }
            i += 1;
        }
    }

    /// A quarter or a month of a year after "in" / "during" / "for" at token `i` ("in the first
    /// quarter of 2023", "in Q1 2023", "in March 2024"): pushes its start and end and returns the
    /// token after it.
    fn calendar_period(&mut self, i: usize) -> Option<usize> {
        if !matches!(w(&self.toks, i), "in" | "during" | "for") {
            return None;
        }
        let mut j = i + 1;
        if w(&self.toks, j) == "the" {
            j += 1;
        }
        let quarter = match (w(&self.toks, j), w(&self.toks, j + 1)) {
            ("first" | "1st", "quarter") => Some((1, 2)),
            ("second" | "2nd", "quarter") => Some((2, 2)),
            ("third" | "3rd", "quarter") => Some((3, 2)),
            ("fourth" | "4th", "quarter") => Some((4, 2)),
            ("q1", _) => Some((1, 1)),
            ("q2", _) => Some((2, 1)),
            ("q3", _) => Some((3, 1)),
            ("q4", _) => Some((4, 1)),
            _ => None,
        };
        let (first_month, months, len) = match quarter {
            Some((q, len)) => (3 * q - 2, 3, len),
            None => (month_number(w(&self.toks, j))?, 1, 1),
        };
        let mut y = j + len;
        if matches!(w(&self.toks, y), "of" | "in") {
            y += 1;
        }
        let year = self.toks.get(y).and_then(year_of)?;
        let (end_year, end_month) =
            if first_month + months > 12 { (year + 1, 1) } else { (year, first_month + months) };
        self.time.push((i, TimePhrase::Date(Op::Ge, format!("{year:04}-{first_month:02}-01"))));
        self.time.push((i, TimePhrase::Date(Op::Lt, format!("{end_year:04}-{end_month:02}-01"))));
        self.mark(i, y + 1);
        Some(y + 1)
    }

    /// A range of days starting at token `i` ("between D1 and D2", "from D1 to D2"): pushes its two
    /// ends and returns the token after it.
    fn date_range(&mut self, i: usize) -> Option<usize> {
        let close = match w(&self.toks, i) {
            "between" => "and",
            "from" => "to",
            _ => return None,
        };
        let (first, len) = date_at(&self.toks, i + 1)?;
        if w(&self.toks, i + 1 + len) != close {
            return None;
        }
        let (last, len2) = date_at(&self.toks, i + 2 + len)?;
        let end = i + 2 + len + len2;
        self.time.push((i, TimePhrase::Date(Op::Ge, first)));
        self.time.push((i, TimePhrase::Date(Op::Le, last)));
        self.mark(i, end);
        Some(end)
    }

    /// A note that a time range includes its ends, right after it ("inclusive of start and end
    /// dates", "inclusive of 30 days ago", "inclusive of today"): accounted for, as the ranges read
    /// here include them. `recent` is the last N units the range reaches back. Returns the token
    /// after the note (or `at` when there is none).
    fn inclusive_note(&mut self, at: usize, recent: Option<(f64, TimeUnit)>) -> usize {
        if w(&self.toks, at) != "inclusive" || w(&self.toks, at + 1) != "of" {
            return at;
        }
        let words = |k: usize, want: &[&str]| want.iter().enumerate().all(|(j, x)| w(&self.toks, k + j) == *x);
        let end = if words(at + 2, &["start", "and", "end", "dates"]) && recent.is_none() {
            at + 6
        } else if words(at + 2, &["today"]) {
            at + 3
        } else {
            let Some((n, unit)) = recent else { return at };
            match number_at(&self.toks, at + 2) {
                Some((m, len))
                    if m == n
                        && time_unit(w(&self.toks, at + 2 + len)) == Some(unit)
                        && w(&self.toks, at + 3 + len) == "ago" =>
                {
                    at + 4 + len
                }
                _ => return at,
            }
        };
        self.mark(at, end);
        end
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
                    let next_is_unit = time_unit(w(&self.toks, i + len + nlen)).is_some();
                    if !next_is_unit && (!plain_of || matches!(self.toks.get(i + len), Some(Tok::Num(_)))) {
                        self.comparisons.push((i, op, value, i + len + nlen));
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
                let sup = CUE_PHRASES.iter().find(|(p, c)| p.len() == 1 && p[0] == next && matches!(c, Cue::Sup(_)));
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
            for (phrase, cue) in CUE_PHRASES {
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

    pub(super) fn push(&mut self, start: usize, end: usize, item: Item) {
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
                // "daily price" also as one word, for names written as one (`dailyprice`).
                let joined = (len > 1).then(|| stem(&(i..i + len).map(|k| w(&self.toks, k)).collect::<String>()));
                let found_here =
                    self.vocab.lookup(&stems).or_else(|| joined.and_then(|j| self.vocab.lookup(&[j.as_str()])));
                if let Some(targets) = found_here {
                    found = Some((len, targets));
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

    /// The mention right after each "never" cue (in the same sentence) is what must not exist.
    fn set_aside_never(&mut self) {
        let mut k = 0;
        while k < self.spans.len() {
            if !matches!(self.spans[k].item, Item::Cue(Cue::Never)) {
                k += 1;
                continue;
            }
            let sentence_end =
                (self.spans[k].end..self.toks.len()).find(|&i| self.toks[i] == Tok::Break).unwrap_or(self.toks.len());
            let next = (k + 1..self.spans.len())
                .find(|&j| matches!(self.spans[j].item, Item::Mention { .. }) && self.spans[j].start < sentence_end);
            match next {
                Some(j) => {
                    let span = self.spans.remove(j);
                    if let Item::Mention { targets, .. } = span.item {
                        self.never.push((span.start, targets));
                    }
                    k += 1;
                }
                // A negation with nothing to negate that the engine reads: never dropped.
                None => {
                    self.never.push((self.spans[k].start, Vec::new()));
                    k += 1;
                }
            }
        }
    }

    /// The one table every mention can refer to; a table named outright wins over one reached
    /// only through its columns.
    /// The base table; when money words standing for stored amounts leave none, again with them
    /// standing for the value of order lines (price times quantity).
    fn base_table(&mut self) -> Result<usize, Decline> {
        let first = self.base_table_once();
        if first.is_ok() {
            return first;
        }
        let lines = self.vocab.line_values();
        let mut swapped = false;
        for span in &mut self.spans {
            if let Item::Mention { targets, start, end, .. } = &mut span.item {
                if *end == *start + 1 && self.vocab.is_money_word(w(&self.toks, *start)) && !lines.is_empty() {
                    *targets = lines.clone();
                    swapped = true;
                }
            }
        }
        if swapped {
            self.scope.clear();
            self.reach.clear();
            return self.base_table_once();
        }
        first
    }

    fn base_table_once(&mut self) -> Result<usize, Decline> {
        let mentions: Vec<&Vec<Target>> = self
            .spans
            .iter()
            .filter_map(|s| match &s.item {
                Item::Mention { targets, .. } => Some(targets),
                _ => None,
            })
            .collect();
        if mentions.is_empty() {
            return Err(Decline::NotAboutData);
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
            _ => match self.only_stored(&fits) {
                Some(one) => one,
                None => return Err(Decline::Ambiguous("the question could be about several tables".into())),
            },
        };
        self.scope = vec![base];
        Ok(base)
    }

    /// The one table from which every mention is reached along foreign keys (many-to-one), so
    /// that counting or summing its rows through the joins counts each row once.
    fn joined_base(&mut self, mentions: &[BTreeSet<usize>]) -> Result<usize, Decline> {
        let candidates: BTreeSet<usize> = mentions.iter().flatten().copied().collect();
        let links = joins::Links::new(self.vocab.view);
        let mut fitting = Vec::new();
        for b in candidates {
            let reach = joins::reachable(&links, b);
            if mentions.iter().all(|tables| tables.iter().any(|t| *t == b || reach.contains_key(t))) {
                fitting.push((b, reach));
            }
        }
        if fitting.len() > 1 {
            let tables: Vec<usize> = fitting.iter().map(|(t, _)| *t).collect();
            let Some(stored) = self.only_stored(&tables) else {
                return Err("the question could be about several tables joined differently".into());
            };
            fitting.retain(|(t, _)| *t == stored);
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

    /// Among tables the question fits equally, the one that stores rows when the others are views
    /// (which derive theirs from stored tables).
    fn only_stored(&self, tables: &[usize]) -> Option<usize> {
        use crate::catalog::TableKind;
        let mut stored = tables
            .iter()
            .copied()
            .filter(|t| !matches!(self.catalog.tables[*t].kind, TableKind::View | TableKind::MaterializedView));
        match (stored.next(), stored.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
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
    fn values(&mut self, probe: &mut dyn Probe) -> Result<(), Decline> {
        // Values may include words that also name schema things ("United States" next to a
        // `state` table), but each must include a word nothing else explained.
        let in_mention: Vec<bool> = (0..self.toks.len())
            .map(|k| self.spans.iter().any(|s| matches!(s.item, Item::Mention { .. }) && s.start <= k && k < s.end))
            .collect();
        let mut candidates = self.value_candidates(&in_mention);
        let columns = self.probe_columns();
        if candidates.is_empty() || columns.is_empty() {
            return Ok(());
        }
        let found = self.look_up_values(probe, &candidates, &columns)?;
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
            let Some(column) = self.value_column(start, &phrase, &hits)? else { continue };
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

    /// Runs of question words (and quoted strings) that may be values: (start, end, phrase).
    fn value_candidates(&self, in_mention: &[bool]) -> Vec<(usize, usize, String)> {
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
                    let (first, last) = (w(&self.toks, start), w(&self.toks, end - 1));
                    if is_stop_word(first) || is_stop_word(last) || (start..end).all(|k| self.used[k]) {
                        continue;
                    }
                    let phrase: Vec<&str> = (start..end).map(|k| w(&self.toks, k)).collect();
                    candidates.push((start, end, phrase.join(" ")));
                }
            }
            i += run;
        }
        candidates
    }

    /// The text columns of the tables in scope whose values are worth looking up (not free text).
    fn probe_columns(&self) -> Vec<ColRef> {
        let mut columns: Vec<ColRef> = Vec::new();
        for &ti in &self.scope {
            for (ci, c) in self.catalog.tables[ti].columns.iter().enumerate() {
                let words = &self.vocab.column_words(ti, ci);
                if c.is_text() && !words.iter().any(|w| is_free_text_word(w)) {
                    columns.push(ColRef { table: ti, column: ci });
                }
            }
        }
        columns.truncate(MAX_PROBE_COLUMNS);
        columns
    }

    /// One bounded query for every candidate phrase in every column: (phrase, column, stored value).
    fn look_up_values(
        &self,
        probe: &mut dyn Probe,
        candidates: &[(usize, usize, String)],
        columns: &[ColRef],
    ) -> Result<Vec<(String, ColRef, String)>, Decline> {
        let phrases: BTreeSet<&str> = candidates.iter().map(|(_, _, p)| p.as_str()).collect();
        let array = phrases.iter().map(|p| super::query::literal(p)).collect::<Vec<_>>().join(", ");
        let parts: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let table = &self.catalog.tables[c.table];
                let col = quote_ident(&table.columns[c.column].name);
                format!(
                    "(SELECT DISTINCT {i} AS c, {col}::text AS v FROM {} WHERE replace(lower({col}::text), '_', ' ') = ANY(ARRAY[{array}]) LIMIT {PROBE_ROW_LIMIT})",
                    table.qualified_name()
                )
            })
            .collect();
        let rows = probe.query(&parts.join(" UNION ALL ")).map_err(|e| format!("looking up values failed: {e}"))?;
        let mut found = Vec::new();
        for row in &rows.rows {
            let i = row.first().and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
            let column = i.and_then(|i| columns.get(usize::try_from(i).ok()?));
            if let (Some(column), Some(value)) = (column, row.get(1).and_then(|v| v.as_str())) {
                // Stored `mobile_app` is asked for as "mobile app".
                found.push((value.to_lowercase().replace('_', " "), *column, value.to_string()));
            }
        }
        Ok(found)
    }

    /// The column a value found in several (or one) is meant in: the one named right before it
    /// ("the city of New York"), else the only one.
    fn value_column(
        &mut self,
        start: usize,
        phrase: &str,
        hits: &[&(String, ColRef, String)],
    ) -> Result<Option<ColRef>, Decline> {
        let mut cols: Vec<ColRef> = hits.iter().map(|(_, c, _)| *c).collect();
        cols.sort();
        cols.dedup();
        let names_one = |targets: &[Target]| {
            targets.iter().find_map(|t| match t {
                Target::Column(ti, ci) if cols.contains(&ColRef { table: *ti, column: *ci }) => {
                    Some(ColRef { table: *ti, column: *ci })
                }
                _ => None,
            })
        };
        // Words between a column and its value that say no more than that ("the city of Oslo"),
        // and a negation, which is left for the filter to read ("status other than cancelled").
        let negation = |i: usize| match (w(&self.toks, i), w(&self.toks, i + 1)) {
            ("other", "than") | ("is", "not") => Some(2),
            ("not" | "except" | "excluding", _) => Some(1),
            _ => None,
        };
        // A column grouped by ("per channel except web") stays the group.
        let grouped = |at: usize| {
            self.spans.iter().any(|c| c.end == at && matches!(c.item, Item::Cue(Cue::Each) | Item::Cue(Cue::By)))
        };
        let before = self.spans.iter().position(|s| {
            let adjacent = s.end == start
                || (s.end + 1 == start && matches!(w(&self.toks, s.end), "of" | "is" | "named" | "called" | "="))
                || (negation(s.end).is_some_and(|len| s.end + len == start) && !grouped(s.start));
            adjacent && matches!(&s.item, Item::Mention { targets, .. } if names_one(targets).is_some())
        });
        match (cols.as_slice(), before) {
            (_, Some(si)) => {
                let Item::Mention { targets, .. } = &self.spans[si].item else { return Ok(None) };
                let c = names_one(targets);
                let (s, e) = (self.spans[si].start, self.spans[si].end);
                let e = if negation(e).is_some() { e } else { start };
                self.spans.remove(si);
                self.mark(s, e);
                Ok(c)
            }
            ([one], None) => Ok(Some(*one)),
            _ => Err(Decline::Ambiguous(format!("\"{phrase}\" is a value of several columns"))),
        }
    }

    /// The column a mention names: one of the base table's, else the only one among the joined
    /// tables'.
    pub(super) fn column_of(&self, base: usize, targets: &[Target]) -> Option<ColRef> {
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
    pub(super) fn entity_of(&self, base: usize, targets: &[Target]) -> Option<usize> {
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
    pub(super) fn entity_group(&self, table: usize) -> Result<GroupKey, Decline> {
        let t = &self.catalog.tables[table];
        let label = label_column(self.vocab, table, t).map(|ci| ColRef { table, column: ci });
        let key = key_column(self.vocab, table, t).map(|ci| ColRef { table, column: ci });
        match (label, key) {
            (Some(label), Some(key)) => Ok(GroupKey::Entity { label, key }),
            (Some(c), None) | (None, Some(c)) => Ok(GroupKey::Column(c)),
            (None, None) => Err(format!("{} has no name or key column to group by", t.name).into()),
        }
    }

    /// The mention is a word standing for a sum ("revenue", "units", "best-selling"): it must name
    /// one column among the tables reached.
    pub(super) fn summed_column(&self, items: &[(usize, usize, Item)], k: usize) -> Option<Result<ColRef, Decline>> {
        let (start, end, Item::Mention { targets, .. }) = items.get(k)? else { return None };
        let word = w(&self.toks, *start);
        if end - start != 1 || !(self.vocab.is_summed_word(word) || SALE_VERBS.contains(&word)) {
            return None;
        }
        Some(match targets.as_slice() {
            [Target::Column(ti, ci)] => Ok(ColRef { table: *ti, column: *ci }),
            _ => Err(Decline::Ambiguous(format!("\"{word}\" could mean several columns"))),
        })
    }

    pub(super) fn is_numeric(&self, c: ColRef) -> bool {
        self.catalog.tables.get(c.table).and_then(|t| t.columns.get(c.column)).is_some_and(|c| c.is_numeric())
    }

    pub(super) fn is_temporal(&self, c: ColRef) -> bool {
        self.catalog.tables.get(c.table).and_then(|t| t.columns.get(c.column)).is_some_and(|c| c.is_temporal())
    }

    /// The date column time phrases refer to: one named in the question, else the only one.
    /// The date column time phrases refer to: one named in the question; else the only one; else
    /// the one a verb of the question describes ("placed" for a column commented "when the order
    /// was placed"); else the one named after the table's own event (`ordered_at` in `orders`,
    /// `created_at`); else the only one that is never empty.
    pub(super) fn date_column(&mut self, base: usize, named: &[ColRef]) -> Result<ColRef, Decline> {
        if let Some(c) = named.iter().find(|c| self.is_temporal(**c)) {
            return Ok(*c);
        }
        let table = &self.catalog.tables[base];
        let temporal: Vec<usize> =
            table.columns.iter().enumerate().filter(|(_, c)| c.is_temporal()).map(|(i, _)| i).collect();
        let pick = |ci: usize| Ok(ColRef { table: base, column: ci });
        match temporal.as_slice() {
            [one] => return pick(*one),
            [] => return self.joined_date(base, named),
            _ => {}
        }
        // A word of the question naming one of them in any way (a value such as "shipped" next to
        // `shipped_at` included) must be the one chosen, or the reading is unclear.
        let named_by_word: Vec<(usize, Vec<usize>)> = temporal
            .iter()
            .map(|&ci| (ci, (0..self.toks.len()).filter(|&i| self.word_describes(base, ci, i)).collect()))
            .filter(|(_, words): &(usize, Vec<usize>)| !words.is_empty())
            .collect();
        if let [(ci, words)] = named_by_word.as_slice() {
            // "orders shipped in 2025", "were shipped in 2025": the event's date, also where the
            // word was read as a state ("shipped" a status): the state would leave out the rows
            // that have moved on since ("delivered").
            let events: Vec<usize> = words.iter().copied().filter(|&i| !self.free(i)).collect();
            if events.iter().all(|&i| self.is_event_not_state(i)) {
                self.filters.retain(|(at, f)| !(events.contains(at) && matches!(f, Filter::Value { .. })));
                for &i in words {
                    self.used[i] = true;
                }
                return pick(*ci);
            }
        }
        if named_by_word.is_empty() {
            let table_stems: Vec<&str> = self
                .vocab
                .view
                .table(base)
                .label_words()
                .iter()
                .map(|w| self.vocab.view.index().stem_of(w.stem))
                .collect();
            let own_event: Vec<usize> = temporal
                .iter()
                .copied()
                .filter(|&ci| {
                    let words = &self.vocab.view.column(base, ci).label_words();
                    words.iter().any(|w| {
                        let s = self.vocab.view.index().stem_of(w.stem);
                        table_stems.contains(&s) || matches!(self.vocab.view.index().raw(w), "created" | "creation")
                    })
                })
                .collect();
            if let [one] = own_event.as_slice() {
                return pick(*one);
            }
            let never_empty: Vec<usize> = temporal.iter().copied().filter(|&ci| table.columns[ci].not_null).collect();
            if let [one] = never_empty.as_slice() {
                return pick(*one);
            }
        }
        Err(Decline::Ambiguous(format!("{} has several date columns; name the one you mean", table.name)))
    }

    /// A table without dates takes the date of the one table it references that has one (an order
    /// line's order): "revenue by category in 2025".
    fn joined_date(&mut self, base: usize, named: &[ColRef]) -> Result<ColRef, Decline> {
        let no_date = || format!("{} has no date column for the time in the question", self.catalog.tables[base].name);
        let links = joins::Links::new(self.vocab.view);
        let reach = joins::reachable(&links, base);
        let mut dated: Vec<(usize, Vec<joins::Hop>)> = reach
            .into_iter()
            .filter_map(|(t, r)| match r {
                Reach::Path(p) if p.len() == 1 => Some((t, p)),
                _ => None,
            })
            .filter(|(t, _)| self.catalog.tables[*t].columns.iter().any(|c| c.is_temporal()))
            .collect();
        dated.sort_by_key(|(t, _)| *t);
        let [(t, path)] = dated.as_slice() else { return Err(no_date().into()) };
        let (t, path) = (*t, path.clone());
        let column = self.date_column(t, named)?;
        self.reach.entry(t).or_insert(Reach::Path(path));
        if !self.scope.contains(&t) {
            self.scope.push(t);
        }
        Ok(column)
    }

    /// Whether question word `i` names date column `ci` of `base`: by a word of its name, or as a
    /// verb its comment uses ("placed").
    fn word_describes(&self, base: usize, ci: usize, i: usize) -> bool {
        let Some(word) = self.toks[i].word() else { return false };
        if is_stop_word(word) || is_meaningful(word) {
            return false;
        }
        let s = &self.stems[i];
        let index = self.vocab.view.index();
        if self.vocab.view.table(base).label_words().iter().any(|w| index.stem_of(w.stem) == s) {
            // The table's own name ("orders" next to `ordered_at`) is the own-event rule's.
            return false;
        }
        let column = self.vocab.view.column(base, ci);
        let in_name = column.label_words().iter().any(|w| {
            !matches!(index.raw(w), "at" | "on" | "date" | "time" | "timestamp" | "ts" | "dt")
                && self.vocab.view.index().stem_of(w.stem) == s
        });
        in_name || (self.is_event_verb(i) && self.vocab.comment_has(base, ci, s))
    }

    /// A numeric column holding years (`year`), which "in 2021" and "each year" mean first.
    pub(super) fn year_column(&self, base: usize) -> Option<ColRef> {
        let columns = self.catalog.tables.get(base)?.columns.len();
        (0..columns)
            .find(|&ci| self.vocab.column_words(base, ci).last().is_some_and(|l| l == "year"))
            .map(|ci| ColRef { table: base, column: ci })
            .filter(|c| self.is_numeric(*c))
    }

    /// The joins that reach every table the query's columns are in, each hop once.
    pub(super) fn joins_for(&self, q: &Query) -> Result<Vec<joins::Hop>, Decline> {
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
                .map(Filter::column),
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
                    return Err(Decline::Ambiguous(format!(
                        "{} is joined in two different ways",
                        self.catalog.tables[t].name
                    )))
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
    pub(super) fn adjective_column(&self, base: usize, adjective: &str) -> Option<ColRef> {
        let nouns: &[&str] = match adjective {
            "longest" | "shortest" => &["length", "long"],
            "tallest" | "highest" | "lowest" => &["height", "altitude", "elevation"],
            "largest" | "biggest" | "smallest" => &["area", "size"],
            "expensive" | "cheapest" | "priciest" => &["price", "cost", "fee"],
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

    /// Words describing a used column in its comment ("in square kilometers" for an area whose
    /// comment says so) are accounted for.
    /// Also accounted for: verbs that the comments of the base table's dates and references use
    /// for the event a row records ("orders placed", "customers who signed up"), which say
    /// nothing about which rows count.
    pub(super) fn explain_by_comments(&mut self, q: &Query, named: &[ColRef]) {
        let mut used_cols: Vec<ColRef> = named.to_vec();
        used_cols.extend(q.outputs.iter().copied());
        used_cols.extend(q.measures.iter().filter_map(|m| m.column));
        let base = q.table;
        let mut event_columns: Vec<ColRef> = Vec::new();
        for &t in std::iter::once(&base).chain(&self.event_tables) {
            event_columns.extend(
                self.vocab
                    .view
                    .columns(t)
                    .filter(|(ci, c)| {
                        c.key_like || c.refers_to.is_some() || self.is_temporal(ColRef { table: t, column: *ci })
                    })
                    .map(|(ci, _)| ColRef { table: t, column: ci }),
            );
        }
        for i in 0..self.toks.len() {
            if !self.free(i) || is_meaningful(w(&self.toks, i)) {
                continue;
            }
            if self.toks[i].word().is_none() {
                continue;
            }
            let s = &self.stems[i];
            let described = used_cols.iter().any(|c| self.vocab.comment_has(c.table, c.column, s));
            let event =
                self.is_event_verb(i) && event_columns.iter().any(|c| self.vocab.comment_has(c.table, c.column, s));
            if described || event {
                self.used[i] = true;
                continue;
            }
            // "signed up" for `signup_date`: two words that are one word of a date's name.
            let joined = format!("{s}{}", self.stems.get(i + 1).map(String::as_str).unwrap_or(""));
            let names_date = self.free(i + 1)
                && event_columns.iter().filter(|c| self.is_temporal(**c)).any(|c| {
                    self.vocab
                        .view
                        .column(c.table, c.column)
                        .label_words()
                        .iter()
                        .any(|x| self.vocab.view.index().raw(x) == joined)
                });
            if names_date {
                self.used[i] = true;
                self.used[i + 1] = true;
            }
        }
    }

    /// Word `i` is a value filter's one word that says what happened to the rows ("were shipped",
    /// "orders shipped") rather than what they are ("shipped orders").
    fn is_event_not_state(&self, i: usize) -> bool {
        let one_word_value = self
            .filters
            .iter()
            .any(|(at, f)| *at == i && matches!(f, Filter::Value { value, .. } if !value.trim().contains(' ')));
        let before_a_noun = self.spans.iter().any(|s| s.start == i + 1 && matches!(s.item, Item::Mention { .. }));
        one_word_value && is_participle(w(&self.toks, i)) && !before_a_noun
    }

    /// A verb naming the event a row records: a past participle ("orders placed"), or the plain verb
    /// after "did" / "do" / "does" ("how many orders did they place").
    fn is_event_verb(&self, i: usize) -> bool {
        let word = w(&self.toks, i);
        is_participle(word)
            || (0..i)
                .rev()
                .take_while(|&j| self.toks[j] != Tok::Break)
                .any(|j| matches!(w(&self.toks, j), "did" | "do" | "does"))
    }

    fn ignorable(&self, i: usize) -> bool {
        match &self.toks[i] {
            Tok::Break => true,
            Tok::Word(x) => is_stop_word(x),
            _ => false,
        }
    }
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

/// A past participle ("placed", "shipped", "written"): how questions name the event a row records.
fn is_participle(word: &str) -> bool {
    (word.len() > 4 && word.ends_with("ed"))
        || matches!(
            word,
            "made" | "paid" | "sold" | "bought" | "written" | "given" | "taken" | "sent" | "built" | "held"
        )
}

fn is_plural(word: &str) -> bool {
    word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us") && !word.ends_with("is")
}
