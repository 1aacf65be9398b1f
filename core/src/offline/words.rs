//! Question text as tokens, word stems, number words and the fixed vocabulary of question phrasing
//! (cues such as "how many", "average", "top", "per" and words that carry no meaning of their own).

/// One token of the question.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A lowercased word (letters, digits, `_`).
    Word(String),
    /// A number as written (`4.5`, `2023`).
    Num(f64),
    /// An ISO date `yyyy-mm-dd`.
    Date(String),
    /// A quoted string, case kept.
    Quoted(String),
    /// A comparison symbol (`>`, `<`, `>=`, `<=`, `=`).
    Sym(String),
    /// The end of a sentence.
    Break,
}

impl Tok {
    pub(crate) fn word(&self) -> Option<&str> {
        match self {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }
}

/// Splits a question into tokens. Apostrophes inside words (`what's`, `haven't`) are not quotes.
pub(crate) fn tokenize(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_is_alnum = i > 0 && chars[i - 1].is_alphanumeric();
        if (c == '"' || c == '`' || c == '“' || c == '‘' || (c == '\'' && !prev_is_alnum)) && i + 1 < chars.len() {
            let close = match c {
                '“' => '”',
                '‘' => '’',
                other => other,
            };
            if let Some(len) = chars[i + 1..].iter().position(|&x| x == close || (close == '\'' && x == '’')) {
                let inner: String = chars[i + 1..i + 1 + len].iter().collect();
                let inner = inner.trim().to_string();
                if !inner.is_empty() {
                    out.push(Tok::Quoted(inner));
                }
                i += len + 2;
                continue;
            }
        }
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || (chars[i] == '.'
                        && i + 1 < chars.len()
                        && chars[i + 1].is_ascii_digit()
                        && chars[start].is_ascii_digit())
                    || (chars[i] == '-'
                        && i + 1 < chars.len()
                        && chars[i + 1].is_ascii_digit()
                        && chars[start].is_ascii_digit()))
            {
                i += 1;
            }
            let raw: String = chars[start..i].iter().collect::<String>().to_lowercase();
            // Apostrophe suffixes: "what's" -> "what is", "city's" -> "city", "haven't" -> "have not".
            if i + 1 < chars.len() && (chars[i] == '\'' || chars[i] == '’') && chars[i + 1].is_alphabetic() {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_alphabetic() {
                    j += 1;
                }
                let suffix: String = chars[i + 1..j].iter().collect::<String>().to_lowercase();
                push_word(&mut out, &raw);
                match suffix.as_str() {
                    "s" if raw == "what" || raw == "that" || raw == "who" || raw == "where" || raw == "there" => {
                        out.push(Tok::Word("is".into()))
                    }
                    "t" => out.push(Tok::Word("not".into())),
                    "re" => out.push(Tok::Word("are".into())),
                    "s" | "ll" | "d" | "ve" | "m" => {}
                    other => out.push(Tok::Word(other.to_string())),
                }
                i = j;
                continue;
            }
            push_word(&mut out, &raw);
            continue;
        }
        match c {
            '>' | '<' | '=' => {
                let mut sym = c.to_string();
                if i + 1 < chars.len() && chars[i + 1] == '=' {
                    sym.push('=');
                    i += 1;
                }
                out.push(Tok::Sym(sym));
            }
            '.' | '?' | '!' | ';' if !matches!(out.last(), Some(Tok::Break) | None) => out.push(Tok::Break),
            '%' => out.push(Tok::Word("percent".into())),
            _ => {}
        }
        i += 1;
    }
    out
}

fn push_word(out: &mut Vec<Tok>, raw: &str) {
    if is_iso_date(raw) {
        out.push(Tok::Date(raw.to_string()));
    } else if raw.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() => out.push(Tok::Num(v)),
            _ => out.push(Tok::Word(raw.to_string())),
        }
    } else {
        out.push(Tok::Word(raw.to_string()));
    }
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A crude English stemmer applied alike to question words and schema names, so plurals and
/// verb forms meet (`cities`/`city`, `rated`/`rating`).
pub(crate) fn stem(word: &str) -> String {
    let w = word.to_lowercase();
    let mut s: &str = &w;
    let owned;
    if s.len() > 4 && s.ends_with("ies") {
        owned = format!("{}y", &s[..s.len() - 3]);
        s = &owned;
    } else if s.len() > 4 && (s.ends_with("sses") || s.ends_with("xes") || s.ends_with("ches") || s.ends_with("shes")) {
        s = &s[..s.len() - 2];
    } else if s.len() > 3 && s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") && !s.ends_with("is") {
        s = &s[..s.len() - 1];
    }
    let mut s = s.to_string();
    for suffix in ["ing", "ed"] {
        if s.len() >= suffix.len() + 3 && s.ends_with(suffix) {
            s.truncate(s.len() - suffix.len());
            break;
        }
    }
    if s.len() > 3 && s.ends_with('e') {
        s.pop();
    }
    s
}

/// Words that only frame a question ("what are the ...", "show me ...").
pub(crate) fn is_stop_word(w: &str) -> bool {
    const STOP: &[&str] = &[
        "a",
        "about",
        "all",
        "along",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "both",
        "can",
        "could",
        "currently",
        "data",
        "database",
        "did",
        "display",
        "do",
        "does",
        "entire",
        "exist",
        "existing",
        "find",
        "for",
        "from",
        "get",
        "give",
        "had",
        "has",
        "have",
        "having",
        "here",
        "how",
        "i",
        "in",
        "include",
        "including",
        "info",
        "information",
        "is",
        "it",
        "its",
        "just",
        "know",
        "let",
        "list",
        "me",
        "my",
        "of",
        "on",
        "one",
        "overall",
        "please",
        "present",
        "provide",
        "record",
        "records",
        "respective",
        "corresponding",
        "result",
        "results",
        "return",
        "returned",
        "row",
        "rows",
        "see",
        "show",
        "tell",
        "that",
        "the",
        "their",
        "them",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "table",
        "tables",
        "us",
        "was",
        "we",
        "were",
        "what",
        "whats",
        "which",
        "who",
        "whom",
        "whose",
        "will",
        "with",
        "would",
        "you",
        "your",
        "together",
        "stored",
        "recorded",
        "kept",
        "available",
        "known",
        "listed",
        "registered",
        "value",
        "values",
        "within",
        "where",
        "located",
        "situated",
        "based",
        "serve",
        "serves",
        "served",
        "serving",
        "belong",
        "belongs",
        "belonging",
        "associated",
        "now",
        "so",
        "far",
        "altogether",
    ];
    STOP.contains(&w)
}

/// Number words ("a hundred thousand", "five", "twelve") starting at `i`: the value and how many
/// tokens it spans.
pub(crate) fn number_at(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    if let Some(Tok::Num(v)) = toks.get(i) {
        // "4 thousand", "2 million"
        if let Some(m) = toks.get(i + 1).and_then(Tok::word).and_then(scale_word) {
            return Some((v * m, 2));
        }
        return Some((*v, 1));
    }
    let mut total = 0.0;
    let mut current = 0.0;
    let mut used = 0;
    let mut any = false;
    let mut j = i;
    while let Some(w) = toks.get(j).and_then(Tok::word) {
        if let Some(v) = small_number(w) {
            current += v;
        } else if w == "hundred" {
            current = if current == 0.0 { 100.0 } else { current * 100.0 };
        } else if let Some(m) = scale_word(w) {
            total += if current == 0.0 { 1.0 } else { current } * m;
            current = 0.0;
        } else if (w == "a" || w == "and") && any {
            // "a hundred", "one hundred and five"
        } else if w == "a"
            && !any
            && toks.get(j + 1).and_then(Tok::word).is_some_and(|n| n == "hundred" || scale_word(n).is_some())
        {
        } else {
            break;
        }
        if w != "a" && w != "and" {
            any = true;
            used = j - i + 1;
        }
        j += 1;
    }
    any.then_some((total + current, used))
}

fn small_number(w: &str) -> Option<f64> {
    const UNITS: &[&str] = &[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: &[&str] = &["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    if let Some(n) = UNITS.iter().position(|u| *u == w) {
        return Some(n as f64);
    }
    TENS.iter().position(|t| *t == w).map(|n| (n as f64 + 2.0) * 10.0)
}

fn scale_word(w: &str) -> Option<f64> {
    match w {
        "thousand" => Some(1e3),
        "million" => Some(1e6),
        "billion" => Some(1e9),
        _ => None,
    }
}

/// Edit distance up to a small bound (typo tolerance for longer schema words).
pub(crate) fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let (mut i, mut j, mut edits) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        edits += 1;
        if edits > 1 {
            return false;
        }
        if a.len() > b.len() {
            i += 1;
        } else if b.len() > a.len() {
            j += 1;
        } else if i + 1 < a.len() && a[i] == b[i + 1] && a[i + 1] == b[i] {
            // transposition
            i += 2;
            j += 2;
        } else {
            i += 1;
            j += 1;
        }
    }
    edits + (a.len() - i) + (b.len() - j) <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words() {
        for w in ["a", "the", "what", "located"] {
            assert!(is_stop_word(w), "{w}");
        }
        for w in ["not", "total", "each", "every", "or"] {
            assert!(!is_stop_word(w), "{w}");
        }
    }

    #[test]
    fn tokens() {
        let t = tokenize("What's the rating > 4.5 in 'New York' on 2023-04-01? Don't");
        assert_eq!(
            t,
            vec![
                Tok::Word("what".into()),
                Tok::Word("is".into()),
                Tok::Word("the".into()),
                Tok::Word("rating".into()),
                Tok::Sym(">".into()),
                Tok::Num(4.5),
                Tok::Word("in".into()),
                Tok::Quoted("New York".into()),
                Tok::Word("on".into()),
                Tok::Date("2023-04-01".into()),
                Tok::Break,
                Tok::Word("don".into()),
                Tok::Word("not".into()),
            ]
        );
    }

    #[test]
    fn stems_meet() {
        assert_eq!(stem("cities"), stem("city"));
        assert_eq!(stem("rated"), stem("rating"));
        assert_eq!(stem("restaurants"), stem("restaurant"));
        assert_eq!(stem("statuses"), stem("status"));
        assert_eq!(stem("boxes"), stem("box"));
    }

    #[test]
    fn number_words() {
        let t = tokenize("a hundred thousand people");
        assert_eq!(number_at(&t, 0), Some((100_000.0, 3)));
        let t = tokenize("twenty five");
        assert_eq!(number_at(&t, 0), Some((25.0, 2)));
        let t = tokenize("3 million");
        assert_eq!(number_at(&t, 0), Some((3e6, 2)));
        assert_eq!(number_at(&tokenize("a city"), 0), None);
    }

    #[test]
    fn typo_distance() {
        assert!(within_one_edit("closing", "closng"));
        assert!(within_one_edit("population", "popluation"));
        assert!(!within_one_edit("country", "county2x"));
    }
}
