//! Classes of words: those that only frame a question, those that shape a query without naming
//! data (quantifiers, comparisons, prepositions), number words, and calendar words.

use super::text::Token;

/// Words that only frame a question ("what are the ...", "show me ...").
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "all",
    "along",
    "also",
    "altogether",
    "an",
    "and",
    "any",
    "are",
    "as",
    "associated",
    "at",
    "available",
    "based",
    "be",
    "been",
    "being",
    "belong",
    "belonging",
    "belongs",
    "both",
    "came",
    "can",
    "come",
    "comes",
    "corresponding",
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
    "far",
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
    "kept",
    "know",
    "known",
    "let",
    "list",
    "listed",
    "located",
    "made",
    "make",
    "makes",
    "me",
    "my",
    "now",
    "of",
    "on",
    "one",
    "our",
    "overall",
    "please",
    "present",
    "provide",
    "record",
    "recorded",
    "records",
    "registered",
    "respective",
    "result",
    "results",
    "return",
    "returned",
    "row",
    "rows",
    "see",
    "serve",
    "served",
    "serves",
    "serving",
    "show",
    "situated",
    "so",
    "stored",
    "table",
    "tables",
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
    "through",
    "to",
    "together",
    "us",
    "value",
    "values",
    "via",
    "was",
    "we",
    "were",
    "what",
    "whats",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "will",
    "with",
    "within",
    "would",
    "you",
    "your",
];

/// Words that shape a query without naming data: quantifiers, comparisons, order, negation,
/// prepositions and pronouns. They never identify a table or column.
const FUNCTION_WORDS: &[&str] = &[
    "above", "after", "against", "among", "before", "below", "between", "but", "by", "each", "either", "every", "he",
    "her", "his", "if", "into", "least", "less", "many", "more", "most", "much", "not", "only", "or", "other", "out",
    "over", "per", "same", "she", "should", "some", "than", "then", "under", "up", "when", "while", "why",
];

/// Words of a column's name that say it holds free text or contact data rather than values a
/// question names (`description`, `notes`, `email`, `address_line2`).
const FREE_TEXT_WORDS: &[&str] = &[
    "abstract",
    "body",
    "comment",
    "comments",
    "description",
    "email",
    "homepage",
    "note",
    "notes",
    "password",
    "phone",
    "text",
    "url",
];

/// A word of a column's name that says the column holds free text (see `FREE_TEXT_WORDS`).
pub fn is_free_text_word(word: &str) -> bool {
    FREE_TEXT_WORDS.contains(&word) || word.starts_with("address")
}

pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// A stop word or a function word: says nothing about which tables or columns a question needs.
pub fn is_non_content(word: &str) -> bool {
    is_stop_word(word) || FUNCTION_WORDS.contains(&word)
}

/// Number words ("a hundred thousand", "five", "twelve", "4 million") starting at `i`: the value
/// and how many tokens it spans.
pub fn number_at(toks: &[Token], i: usize) -> Option<(f64, usize)> {
    let word = |j: usize| toks.get(j).and_then(Token::word);
    if let Some(Token::Num(v)) = toks.get(i) {
        if let Some(m) = word(i + 1).and_then(scale_word) {
            return Some((v * m, 2));
        }
        return Some((*v, 1));
    }
    let (mut total, mut current, mut used, mut any) = (0.0, 0.0, 0, false);
    let mut j = i;
    while let Some(w) = word(j) {
        let filler = w == "a" || w == "and";
        if let Some(v) = small_number(w) {
            current += v;
        } else if w == "hundred" {
            current = if current == 0.0 { 100.0 } else { current * 100.0 };
        } else if let Some(m) = scale_word(w) {
            total += if current == 0.0 { 1.0 } else { current } * m;
            current = 0.0;
        } else if filler && (any || word(j + 1).is_some_and(|n| n == "hundred" || scale_word(n).is_some())) {
            // "a hundred", "one hundred and five"
        } else {
            break;
        }
        if !filler {
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

/// A unit of calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl TimeUnit {
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Day => "day",
            TimeUnit::Week => "week",
            TimeUnit::Month => "month",
            TimeUnit::Quarter => "quarter",
            TimeUnit::Year => "year",
        }
    }
}

/// "month", "months", "monthly"...
pub fn time_unit(word: &str) -> Option<TimeUnit> {
    match word {
        "day" | "days" | "daily" => Some(TimeUnit::Day),
        "week" | "weeks" | "weekly" => Some(TimeUnit::Week),
        "month" | "months" | "monthly" => Some(TimeUnit::Month),
        "quarter" | "quarters" | "quarterly" => Some(TimeUnit::Quarter),
        "year" | "years" | "yearly" | "annual" | "annually" => Some(TimeUnit::Year),
        _ => None,
    }
}

/// An adjective that is a time bucket on its own ("monthly revenue").
pub fn is_bucket_adjective(word: &str) -> bool {
    matches!(word, "daily" | "weekly" | "monthly" | "quarterly" | "yearly" | "annual" | "annually")
}

/// January is 1; three letters or more of the name ("sept", "dec").
pub fn month_number(word: &str) -> Option<u32> {
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

/// A plausible calendar year ("2024").
pub fn year_of(token: &Token) -> Option<i32> {
    match token {
        Token::Num(y) if y.fract() == 0.0 && (1800.0..=2200.0).contains(y) => Some(*y as i32),
        _ => None,
    }
}

/// A date written `2023-04-01`, `April 1, 2023` or `Apr 1 2023` at `i`: ISO text and tokens spanned.
pub fn date_at(toks: &[Token], i: usize) -> Option<(String, usize)> {
    if let Some(Token::Date(d)) = toks.get(i) {
        return Some((d.clone(), 1));
    }
    let month = month_number(toks.get(i)?.word()?)?;
    let (Some(Token::Num(day)), Some(year)) = (toks.get(i + 1), toks.get(i + 2).and_then(year_of)) else {
        return None;
    };
    if day.fract() != 0.0 || !(1.0..=31.0).contains(day) {
        return None;
    }
    Some((format!("{year:04}-{month:02}-{:02}", *day as u32), 3))
}

/// Whether two words are at most one edit apart (typo tolerance for longer schema words).
pub fn within_one_edit(a: &str, b: &str) -> bool {
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
    use super::super::text::tokenize;
    use super::*;

    #[test]
    fn word_classes() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]), "sorted for binary search");
        for w in ["a", "the", "what", "located"] {
            assert!(is_stop_word(w), "{w}");
        }
        for w in ["not", "total", "each", "every", "or", "most"] {
            assert!(!is_stop_word(w), "{w}");
        }
        for w in ["most", "per", "the", "not"] {
            assert!(is_non_content(w), "{w}");
        }
        assert!(!is_non_content("customer"));
    }

    #[test]
    fn number_words() {
        assert_eq!(number_at(&tokenize("a hundred thousand people"), 0), Some((100_000.0, 3)));
        assert_eq!(number_at(&tokenize("twenty five"), 0), Some((25.0, 2)));
        assert_eq!(number_at(&tokenize("3 million"), 0), Some((3e6, 2)));
        assert_eq!(number_at(&tokenize("a city"), 0), None);
    }

    #[test]
    fn calendar_words() {
        assert_eq!(date_at(&tokenize("April 1, 2023"), 0), Some(("2023-04-01".into(), 3)));
        assert_eq!(date_at(&tokenize("2023-04-01"), 0), Some(("2023-04-01".into(), 1)));
        assert_eq!(date_at(&tokenize("may be"), 0), None);
        assert_eq!(month_number("sept"), Some(9));
        assert_eq!(time_unit("monthly"), Some(TimeUnit::Month));
    }

    #[test]
    fn typo_distance() {
        assert!(within_one_edit("closing", "closng"));
        assert!(within_one_edit("population", "popluation"));
        assert!(!within_one_edit("country", "county2x"));
    }
}
