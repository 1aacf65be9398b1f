//! The project's one SQL scanner. It follows PostgreSQL's lexical rules for everything that can hide
//! a `;`, a keyword or a comment marker: string literals (`''` doubling, `E''` backslash escapes,
//! the `B''`/`X''`/`N''`/`U&''` forms), quoted identifiers, dollar quotes, `--` comments and nested
//! `/* */` comments. It never fails and never looks back: one pass, each byte read a bounded number
//! of times, and text that ends inside a literal, identifier or comment gives an unterminated token.
//!
//! ```
//! use sqlchat_core::lang::sql::{self, Kind};
//! let kinds: Vec<Kind> = sql::tokens("SELECT 'a;b' -- c").map(|t| t.kind).collect();
//! assert_eq!(kinds, [Kind::Word, Kind::Space, Kind::String, Kind::Space, Kind::Comment]);
//! assert_eq!(sql::split_statements("SELECT 1; /* two */ SELECT ';'; "), ["SELECT 1", "/* two */ SELECT ';'"]);
//! assert!(sql::is_blank(" -- nothing\n /* at /* all */ */ "));
//! ```

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A keyword or an identifier: letters, digits, `_`, `$` and any non-ASCII character, not
    /// starting with a digit or `$`.
    Word,
    /// A numeric constant (`42`, `1.5`, `1e10`; a sign is `Other`).
    Number,
    /// A positional parameter: `$1`.
    Param,
    /// `"..."`, or `U&"..."` with its prefix.
    QuotedIdent,
    /// `'...'`, with its prefix when it has one (`E'...'`, `B'...'`, `X'...'`, `N'...'`, `U&'...'`).
    String,
    /// `$$...$$` or `$tag$...$tag$`.
    DollarString,
    /// `-- ...` up to the end of the line (the newline is not part of it), or `/* ... */`.
    Comment,
    /// A run of spaces, tabs and line breaks.
    Space,
    /// `;`
    Semicolon,
    /// Any other single character: operators, parentheses, commas, dots, backslashes...
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    /// Byte range in the scanned text; always on character boundaries.
    pub range: Range<usize>,
    /// A string, quoted identifier, dollar string or block comment that the text ends inside.
    pub unterminated: bool,
}

impl Token {
    pub fn text<'a>(&self, scanned: &'a str) -> &'a str {
        &scanned[self.range.clone()]
    }
}

/// How quotes inside '...' literals are read. `Standard` is PostgreSQL's reading; the other two
/// read what models write for other databases and exist only to repair such text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quotes {
    Standard,
    /// A backslash escapes the next character in every literal, as in MySQL: `'it\'s'`.
    BackslashEscapes,
    /// A quote between two ASCII letters is an apostrophe inside the literal: `'Women's'`.
    BareApostrophes,
}

/// The tokens of `text`, read the standard way.
pub fn tokens(text: &str) -> Tokens<'_> {
    tokens_with(text, Quotes::Standard)
}

pub fn tokens_with(text: &str, quotes: Quotes) -> Tokens<'_> {
    Tokens { text, pos: 0, quotes }
}

/// The statements of `text`, split at each `;` outside literals, identifiers and comments, without
/// the `;` and the surrounding whitespace; empty statements (only whitespace and comments) are left
/// out.
pub fn split_statements(text: &str) -> Vec<&str> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut blank = true;
    for token in tokens(text) {
        match token.kind {
            Kind::Semicolon => {
                if !blank {
                    statements.push(text[start..token.range.start].trim());
                }
                start = token.range.end;
                blank = true;
            }
            Kind::Space | Kind::Comment => {}
            _ => blank = false,
        }
    }
    if !blank {
        statements.push(text[start..].trim());
    }
    statements
}

/// `text` with every string, dollar-quoted string and number replaced by `?` and every comment by
/// a space: the statement's shape without the values written into it.
pub fn without_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for t in tokens(text) {
        match t.kind {
            Kind::String | Kind::DollarString | Kind::Number => out.push('?'),
            Kind::Comment => out.push(' '),
            _ => out.push_str(t.text(text)),
        }
    }
    out
}

/// True when `text` holds nothing but whitespace and comments.
pub fn is_blank(text: &str) -> bool {
    tokens(text).all(|t| matches!(t.kind, Kind::Space | Kind::Comment))
}

pub struct Tokens<'a> {
    text: &'a str,
    pos: usize,
    quotes: Quotes,
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let b = self.text.as_bytes();
        let start = self.pos;
        let c = *b.get(start)?;
        let next = b.get(start + 1).copied();
        let (kind, end) = match c {
            b';' => (Kind::Semicolon, Some(start + 1)),
            c if is_space(c) => (Kind::Space, Some(run_end(b, start, is_space))),
            b'-' if next == Some(b'-') => {
                (Kind::Comment, Some(self.text[start..].find('\n').map_or(b.len(), |n| start + n)))
            }
            b'/' if next == Some(b'*') => (Kind::Comment, block_comment_end(b, start)),
            b'\'' => (Kind::String, string_end(b, start, self.quotes)),
            b'"' => (Kind::QuotedIdent, quoted_end(b, start)),
            b'$' => self.dollar(start),
            c if c.is_ascii_digit() => (Kind::Number, Some(run_end(b, start, |c| is_ident_cont(c) || c == b'.'))),
            c if is_ident_start(c) => self.word(start),
            // Bytes from 0x80 up are identifier bytes, so an `Other` is always one ASCII character.
            _ => (Kind::Other, Some(start + 1)),
        };
        let unterminated = end.is_none();
        let end = end.unwrap_or(b.len());
        self.pos = end;
        Some(Token { kind, range: start..end, unterminated })
    }
}

impl Tokens<'_> {
    /// A word, or a literal whose prefix the word is: `E'..'`, `B'..'`, `X'..'`, `N'..'`,
    /// `U&'..'`, `U&".."`.
    fn word(&self, start: usize) -> (Kind, Option<usize>) {
        let b = self.text.as_bytes();
        let end = run_end(b, start, is_ident_cont);
        let after = b.get(end).copied();
        match (&b[start..end], after) {
            // E'' strings have PostgreSQL's own backslash escapes whatever the reading.
            ([b'e' | b'E'], Some(b'\'')) => (Kind::String, string_end(b, end, Quotes::BackslashEscapes)),
            ([b'b' | b'B' | b'x' | b'X' | b'n' | b'N'], Some(b'\'')) => (Kind::String, string_end(b, end, self.quotes)),
            ([b'u' | b'U'], Some(b'&')) => match b.get(end + 1) {
                Some(b'\'') => (Kind::String, string_end(b, end + 1, self.quotes)),
                Some(b'"') => (Kind::QuotedIdent, quoted_end(b, end + 1)),
                _ => (Kind::Word, Some(end)),
            },
            _ => (Kind::Word, Some(end)),
        }
    }

    /// `$1`, `$$...$$`, `$tag$...$tag$`, or a lone `$`.
    fn dollar(&self, start: usize) -> (Kind, Option<usize>) {
        let b = self.text.as_bytes();
        if b.get(start + 1).is_some_and(u8::is_ascii_digit) {
            return (Kind::Param, Some(run_end(b, start + 1, |c| c.is_ascii_digit())));
        }
        // A tag is an identifier without `$` (it cannot start with a digit, handled above).
        let tag_end = run_end(b, start + 1, |c| is_ident_cont(c) && c != b'$');
        if b.get(tag_end) != Some(&b'$') {
            return (Kind::Other, Some(start + 1));
        }
        let tag = &self.text[start..=tag_end];
        let body = tag_end + 1;
        (Kind::DollarString, self.text[body..].find(tag).map(|n| body + n + tag.len()))
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// End of the run of bytes from `start` (included) that satisfy `keep`.
fn run_end(b: &[u8], start: usize, keep: impl Fn(u8) -> bool) -> usize {
    b[start..].iter().position(|&c| !keep(c)).map_or(b.len(), |n| start + n)
}

/// End (exclusive) of the '...' literal whose opening quote is at `open`.
fn string_end(b: &[u8], open: usize, quotes: Quotes) -> Option<usize> {
    let letter = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphabetic);
    let mut i = open + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quotes == Quotes::BackslashEscapes => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' if quotes == Quotes::BareApostrophes && letter(i - 1) && letter(i + 1) => i += 1,
            b'\'' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// End (exclusive) of the "..." identifier whose opening quote is at `open`.
fn quoted_end(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < b.len() {
        if b[i] == b'"' {
            if b.get(i + 1) != Some(&b'"') {
                return Some(i + 1);
            }
            i += 1;
        }
        i += 1;
    }
    None
}

/// End (exclusive) of the `/* */` comment opened at `start`; PostgreSQL nests them.
fn block_comment_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_and_comments_leave_the_shape() {
        assert_eq!(
            super::without_literals(
                "SELECT count(*) FROM t WHERE name = 'Jane''s' AND n > 42 /* Jane */ AND x = $q$a$q$"
            ),
            "SELECT count(*) FROM t WHERE name = ? AND n > ?   AND x = ?"
        );
        assert_eq!(super::without_literals("SELECT \"Jane\" FROM t -- Jane"), "SELECT \"Jane\" FROM t  ");
    }

    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        tokens(text).map(|t| (t.kind, t.text(text))).collect()
    }

    #[test]
    fn words_numbers_and_punctuation() {
        assert_eq!(
            kinds("SELECT a1, t.\"B\" FROM x$y WHERE n >= 1.5e3"),
            [
                (Kind::Word, "SELECT"),
                (Kind::Space, " "),
                (Kind::Word, "a1"),
                (Kind::Other, ","),
                (Kind::Space, " "),
                (Kind::Word, "t"),
                (Kind::Other, "."),
                (Kind::QuotedIdent, "\"B\""),
                (Kind::Space, " "),
                (Kind::Word, "FROM"),
                (Kind::Space, " "),
                (Kind::Word, "x$y"),
                (Kind::Space, " "),
                (Kind::Word, "WHERE"),
                (Kind::Space, " "),
                (Kind::Word, "n"),
                (Kind::Space, " "),
                (Kind::Other, ">"),
                (Kind::Other, "="),
                (Kind::Space, " "),
                (Kind::Number, "1.5e3"),
            ]
        );
        assert_eq!(kinds("café_été"), [(Kind::Word, "café_été")]);
        assert_eq!(kinds("$1+$23"), [(Kind::Param, "$1"), (Kind::Other, "+"), (Kind::Param, "$23")]);
    }

    #[test]
    fn literals_keep_what_they_hold() {
        assert_eq!(kinds("'a;b''c'"), [(Kind::String, "'a;b''c'")]);
        assert_eq!(kinds("E'it\\'s;'x"), [(Kind::String, "E'it\\'s;'"), (Kind::Word, "x")]);
        assert_eq!(kinds("e'\\\\'"), [(Kind::String, "e'\\\\'")]);
        // Standard strings end at the first lone quote, backslash or not.
        assert_eq!(kinds("'C:\\' x"), [(Kind::String, "'C:\\'"), (Kind::Space, " "), (Kind::Word, "x")]);
        assert_eq!(kinds("X'1F' B'01' N'n' U&'d\\0061'"), {
            let mut v = Vec::new();
            for (i, s) in ["X'1F'", "B'01'", "N'n'", "U&'d\\0061'"].into_iter().enumerate() {
                if i > 0 {
                    v.push((Kind::Space, " "));
                }
                v.push((Kind::String, s));
            }
            v
        });
        assert_eq!(kinds("U&\"d\\0061\""), [(Kind::QuotedIdent, "U&\"d\\0061\"")]);
        assert_eq!(kinds("\"a\"\"b;\""), [(Kind::QuotedIdent, "\"a\"\"b;\"")]);
        // A word ending in e is no E'' prefix.
        assert_eq!(kinds("somee'x'"), [(Kind::Word, "somee"), (Kind::String, "'x'")]);
    }

    #[test]
    fn dollar_quotes() {
        assert_eq!(kinds("$$a;'b$$"), [(Kind::DollarString, "$$a;'b$$")]);
        assert_eq!(kinds("$q$c$$;$q$;"), [(Kind::DollarString, "$q$c$$;$q$"), (Kind::Semicolon, ";")]);
        assert_eq!(kinds("$é$x$é$"), [(Kind::DollarString, "$é$x$é$")]);
        assert_eq!(kinds("$ x"), [(Kind::Other, "$"), (Kind::Space, " "), (Kind::Word, "x")]);
        assert_eq!(kinds("$a"), [(Kind::Other, "$"), (Kind::Word, "a")]);
    }

    #[test]
    fn comments_nest_and_lines_end() {
        assert_eq!(kinds("-- a; b\nx"), [(Kind::Comment, "-- a; b"), (Kind::Space, "\n"), (Kind::Word, "x")]);
        assert_eq!(kinds("/* a /* b; */ c */x"), [(Kind::Comment, "/* a /* b; */ c */"), (Kind::Word, "x")]);
        assert_eq!(
            kinds("a-b/c"),
            [(Kind::Word, "a"), (Kind::Other, "-"), (Kind::Word, "b"), (Kind::Other, "/"), (Kind::Word, "c")]
        );
    }

    #[test]
    fn unterminated_tokens_run_to_the_end() {
        for text in ["'abc", "E'a\\'", "\"abc", "$$abc", "$t$abc$$", "/* a /* b */", "U&'x"] {
            let all: Vec<Token> = tokens(text).collect();
            let last = all.last().unwrap();
            assert!(last.unterminated && last.range.end == text.len(), "{text}: {all:?}");
        }
        assert!(tokens("-- to the end").all(|t| !t.unterminated));
    }

    #[test]
    fn quote_readings_for_repairs() {
        let text = "'Women\\'s' x";
        assert_eq!(tokens(text).next().unwrap().range, 0..8);
        assert_eq!(tokens_with(text, Quotes::BackslashEscapes).next().unwrap().range, 0..10);
        let text = "'O'Brien' x";
        assert_eq!(tokens(text).next().unwrap().range, 0..3);
        assert_eq!(tokens_with(text, Quotes::BareApostrophes).next().unwrap().range, 0..9);
        // E'' keeps its own escapes whatever the reading.
        assert_eq!(tokens_with("E'a\\'b' x", Quotes::BareApostrophes).next().unwrap().range, 0..7);
    }

    #[test]
    fn statements_split_outside_literals_and_comments() {
        assert_eq!(split_statements("SELECT 1; SELECT 2"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(split_statements(" SELECT 'a;b'; ;; -- c;\n"), ["SELECT 'a;b'"]);
        assert_eq!(split_statements("SELECT $$;$$; SELECT \"x;\" /* ; */"), ["SELECT $$;$$", "SELECT \"x;\" /* ; */"]);
        assert!(split_statements("  /* only */ -- comments\n;").is_empty());
        assert_eq!(split_statements("SELECT 'open;"), ["SELECT 'open;"]);
    }

    #[test]
    fn blank_text() {
        assert!(is_blank(""));
        assert!(is_blank(" \n\t-- x\n/* y */"));
        assert!(!is_blank("/* y */ ;"));
        assert!(!is_blank("x"));
    }

    #[test]
    fn tokens_cover_the_text_without_gaps() {
        for text in ["SELECT 'é', \"ü\" FROM t -- ñ\n/* ß */ $a$ö$a$;", "\\_ `x` ~~~ ```", "'", "$", "/*", "E'", "U&"]
        {
            let mut at = 0;
            for t in tokens(text) {
                assert_eq!(t.range.start, at, "{text}");
                assert!(t.range.end > t.range.start && text.is_char_boundary(t.range.end));
                at = t.range.end;
            }
            assert_eq!(at, text.len());
        }
    }

    #[test]
    fn one_pass_whatever_the_text() {
        // Each of these would make a scanner that searches again from every position quadratic.
        let n = 200_000;
        for text in ["$a".repeat(n), "/*".repeat(n), "'".repeat(n), "$$x".repeat(n), "-".repeat(n), "E'\\".repeat(n)] {
            let started = std::time::Instant::now();
            let count = tokens(&text).count();
            assert!(count >= 1);
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", &text[..8]);
        }
    }
}
