//! Text as words: questions as tokens, identifiers as their words, and every word as its stem
//! (Snowball's English stemmer, applied alike to question words and schema names so that
//! `shipped`/`ship`, `cities`/`city` and `rated`/`rating` meet).

use rust_stemmers::{Algorithm, Stemmer};

/// One token of a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
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

impl Token {
    pub fn word(&self) -> Option<&str> {
        match self {
            Token::Word(w) => Some(w),
            _ => None,
        }
    }
}

/// The stem of a word, lowercased: words of one or two letters and words with digits are kept
/// as they are.
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if lower.chars().count() <= 2 || lower.chars().any(|c| c.is_numeric()) {
        return lower;
    }
    Stemmer::create(Algorithm::English).stem(&lower).into_owned()
}

/// The lowercase words of an identifier or a comment, split at separators, at camelCase humps
/// (`orderTotal`, `HTTPServer` -> http, server) and between letters and digits (`address2`).
pub fn identifier_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    each_identifier_word(name, |w| words.push(w.to_string()));
    words
}

/// Calls `f` with each lowercase word of an identifier or comment (see `identifier_words`).
pub fn each_identifier_word(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    let mut emit = |word: &mut String| {
        if !word.is_empty() {
            f(word);
            word.clear();
        }
    };
    let mut chars = text.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        if !c.is_alphanumeric() {
            emit(&mut word);
            prev = None;
            continue;
        }
        let boundary = prev.is_some_and(|p| {
            let camel = c.is_uppercase()
                && (p.is_lowercase() || (p.is_uppercase() && chars.peek().is_some_and(|n| n.is_lowercase())));
            camel || p.is_numeric() != c.is_numeric()
        });
        if boundary {
            emit(&mut word);
        }
        word.extend(c.to_lowercase());
        prev = Some(c);
    }
    emit(&mut word);
}

/// Splits a question into tokens. Apostrophes inside words (`what's`, `haven't`) are not quotes.
pub fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(next) = quoted_at(&chars, i, &mut out) {
            i = next;
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            i = word_at(&chars, i, &mut out);
            continue;
        }
        match c {
            '>' | '<' | '=' => {
                let mut sym = c.to_string();
                if chars.get(i + 1) == Some(&'=') {
                    sym.push('=');
                    i += 1;
                }
                out.push(Token::Sym(sym));
            }
            '.' | '?' | '!' | ';' if !matches!(out.last(), Some(Token::Break) | None) => out.push(Token::Break),
            '%' => out.push(Token::Word("percent".into())),
            _ => {}
        }
        i += 1;
    }
    out
}

/// A quoted string starting at `i`: pushes it and returns where scanning goes on.
fn quoted_at(chars: &[char], i: usize, out: &mut Vec<Token>) -> Option<usize> {
    let c = chars[i];
    let prev_is_alnum = i > 0 && chars[i - 1].is_alphanumeric();
    let opens = c == '"' || c == '`' || c == '“' || c == '‘' || (c == '\'' && !prev_is_alnum);
    if !opens || i + 1 >= chars.len() {
        return None;
    }
    let close = match c {
        '“' => '”',
        '‘' => '’',
        other => other,
    };
    let len = chars[i + 1..].iter().position(|&x| x == close || (close == '\'' && x == '’'))?;
    let inner: String = chars[i + 1..i + 1 + len].iter().collect();
    let inner = inner.trim();
    if !inner.is_empty() {
        out.push(Token::Quoted(inner.to_string()));
    }
    Some(i + len + 2)
}

/// A word, number or date starting at `i` (with its apostrophe suffix): pushes it and returns
/// where scanning goes on.
fn word_at(chars: &[char], start: usize, out: &mut Vec<Token>) -> usize {
    let numeric_start = chars[start].is_ascii_digit();
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        let joins_digits =
            (c == '.' || c == '-') && numeric_start && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if !(c.is_alphanumeric() || c == '_' || joins_digits) {
            break;
        }
        i += 1;
    }
    let raw: String = chars[start..i].iter().collect::<String>().to_lowercase();
    push_word(out, &raw);
    // Apostrophe suffixes: "what's" -> "what is", "city's" -> "city", "haven't" -> "have not".
    if i + 1 < chars.len() && (chars[i] == '\'' || chars[i] == '’') && chars[i + 1].is_alphabetic() {
        let mut j = i + 1;
        while j < chars.len() && chars[j].is_alphabetic() {
            j += 1;
        }
        let suffix: String = chars[i + 1..j].iter().collect::<String>().to_lowercase();
        match suffix.as_str() {
            "s" if matches!(raw.as_str(), "what" | "that" | "who" | "where" | "there" | "it" | "here") => {
                out.push(Token::Word("is".into()))
            }
            "t" => out.push(Token::Word("not".into())),
            "re" => out.push(Token::Word("are".into())),
            "s" | "ll" | "d" | "ve" | "m" => {}
            other => out.push(Token::Word(other.to_string())),
        }
        return j;
    }
    i
}

fn push_word(out: &mut Vec<Token>, raw: &str) {
    if is_iso_date(raw) {
        out.push(Token::Date(raw.to_string()));
    } else if raw.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() => out.push(Token::Num(v)),
            _ => out.push(Token::Word(raw.to_string())),
        }
    } else {
        out.push(Token::Word(raw.to_string()));
    }
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = tokenize("What's the rating > 4.5 in 'New York' on 2023-04-01? Don't");
        assert_eq!(
            t,
            vec![
                Token::Word("what".into()),
                Token::Word("is".into()),
                Token::Word("the".into()),
                Token::Word("rating".into()),
                Token::Sym(">".into()),
                Token::Num(4.5),
                Token::Word("in".into()),
                Token::Quoted("New York".into()),
                Token::Word("on".into()),
                Token::Date("2023-04-01".into()),
                Token::Break,
                Token::Word("don".into()),
                Token::Word("not".into()),
            ]
        );
        assert_eq!(tokenize("best-selling"), vec![Token::Word("best".into()), Token::Word("selling".into())]);
    }

    #[test]
    fn stems_meet() {
        for (a, b) in [
            ("cities", "city"),
            ("rated", "rating"),
            ("restaurants", "restaurant"),
            ("statuses", "status"),
            ("boxes", "box"),
            ("shipped", "ship"),
            ("shipped", "shipping"),
            ("prices", "pricing"),
            ("Orders", "order"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        assert_eq!(stem("id"), "id");
        assert!(!stem("ࠀࠀed").is_empty());
    }

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(identifier_words("orderTotal_usd"), ["order", "total", "usd"]);
        assert_eq!(identifier_words("sb_cust_id"), ["sb", "cust", "id"]);
        assert_eq!(
            identifier_words("customerID first_name HTTPServer"),
            ["customer", "id", "first", "name", "http", "server"]
        );
        assert_eq!(identifier_words("address2"), ["address", "2"]);
        assert!(identifier_words("__").is_empty());
    }
}
