//! Statements cut out of model text with the project's SQL scanner, and cleaned of what markdown
//! and other databases' habits put in them. Rewrites apply to code only, never inside literals.

use super::{starts_statement, Extracted};
use crate::catalog::quote_ident;
use crate::lang::sql::{self, Kind, Quotes};
use std::ops::Range;

/// The statement at the start of `text`, cleaned. When more statements follow it in the same
/// stretch of SQL the reply holds several and is refused as a whole, never cut to its first; what
/// follows a `;` and is only comments, whitespace, a fence or prose is not another statement.
/// None when nothing but comments and whitespace is there.
pub(super) fn statements_from(text: &str) -> Option<Extracted> {
    let (first, mut after) = cut_statement(text)?;
    let mut all = vec![first];
    while let Some(at) = after {
        let Some(start) = next_statement(&text[at..]).map(|n| at + n) else { break };
        let Some((sql, rest)) = cut_statement(&text[start..]) else { break };
        all.push(sql);
        after = rest.map(|n| start + n);
    }
    Some(if all.len() == 1 { Extracted::Sql(all.remove(0)) } else { Extracted::Several(all.join(";\n")) })
}

/// Where the next statement starts after a `;`, if the stretch of SQL goes on with one.
fn next_statement(rest: &str) -> Option<usize> {
    for token in sql::tokens(rest) {
        match token.kind {
            Kind::Semicolon | Kind::Comment => {}
            Kind::Space if line_ends_sql(rest, &token.range) => return None,
            Kind::Space => {}
            _ => return starts_statement(&rest[token.range.start..]).then_some(token.range.start),
        }
    }
    None
}

/// The pieces of one statement: rewrites differ between them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    Code,
    Literal,
    /// Quoted identifiers and dollar strings: kept exactly as written.
    Verbatim,
    Comment,
}

struct Cut {
    pieces: Vec<(Piece, Range<usize>)>,
    /// Just after the `;` that ended the statement, if one did.
    after: Option<usize>,
    /// A literal, quoted identifier or comment runs to the end of the text.
    unterminated: bool,
    quotes: Quotes,
}

/// The first statement of `text`, cleaned, and the offset just after its `;` if it had one.
fn cut_statement(text: &str) -> Option<(String, Option<usize>)> {
    let mut cut = scan(text, Quotes::Standard);
    if cut.unterminated {
        // 'Women\'s' is MySQL's escaped quote; read the standard way it leaves a literal open, so
        // reading it MySQL's way can only turn a syntax error into a statement. 'Women's' is an
        // apostrophe the model forgot to double.
        if let Some(repaired) = [Quotes::BackslashEscapes, Quotes::BareApostrophes]
            .into_iter()
            .map(|q| scan(text, q))
            .find(|c| !c.unterminated)
        {
            cut = repaired;
        }
    }
    Some((clean(text, &cut)?, cut.after))
}

/// Scans up to a `;` outside literals and comments, a code fence or a line of prose.
fn scan(text: &str, quotes: Quotes) -> Cut {
    let mut cut = Cut { pieces: Vec::new(), after: None, unterminated: false, quotes };
    for token in sql::tokens_with(text, quotes) {
        let piece = match token.kind {
            Kind::Semicolon => {
                cut.after = Some(token.range.end);
                break;
            }
            Kind::Space if line_ends_sql(text, &token.range) => break,
            Kind::String => Piece::Literal,
            Kind::QuotedIdent | Kind::DollarString => Piece::Verbatim,
            Kind::Comment => Piece::Comment,
            _ => Piece::Code,
        };
        cut.unterminated |= token.unterminated;
        match cut.pieces.last_mut() {
            Some((Piece::Code, last)) if piece == Piece::Code => last.end = token.range.end,
            _ => cut.pieces.push((piece, token.range)),
        }
    }
    cut
}

/// The statement's text with comments and whitespace around it dropped, markdown escapes undone,
/// backtick-quoted names quoted for PostgreSQL and literals read another way rewritten to standard
/// SQL; None when nothing else is left.
fn clean(text: &str, cut: &Cut) -> Option<String> {
    let pieces = &cut.pieces;
    let is_filler = |(piece, range): &(Piece, Range<usize>)| {
        *piece == Piece::Comment || (*piece == Piece::Code && text[range.clone()].trim().is_empty())
    };
    let first = pieces.iter().position(|p| !is_filler(p))?;
    let last = pieces.iter().rposition(|p| !is_filler(p))?;
    let markdown_escaped = pieces.iter().any(|(p, r)| *p == Piece::Code && has_markdown_escape(&text[r.clone()]));
    let mut sql = String::with_capacity(pieces[last].1.end - pieces[first].1.start);
    for (piece, range) in &pieces[first..=last] {
        let written = &text[range.clone()];
        match piece {
            Piece::Code => sql.push_str(&backticks_to_quotes(&unescape_markdown(written))),
            Piece::Literal => {
                let literal = if markdown_escaped {
                    written.replace("\\_", "_").replace("\\*", "*")
                } else {
                    written.to_string()
                };
                // E'' literals have PostgreSQL's own escapes and are never rewritten.
                let e_string = literal.starts_with(['e', 'E']);
                sql.push_str(&match cut.quotes {
                    Quotes::BackslashEscapes if !e_string => mysql_literal_to_standard(&literal),
                    Quotes::BareApostrophes => double_inner_quotes(&literal),
                    _ => literal,
                });
            }
            Piece::Verbatim | Piece::Comment => sql.push_str(written),
        }
    }
    let sql = sql.trim().to_string();
    (!sql.is_empty()).then_some(sql)
}

/// True when a whitespace token holds a line break after which the text is no longer SQL.
fn line_ends_sql(text: &str, space: &Range<usize>) -> bool {
    text[space.clone()].rfind('\n').is_some_and(|nl| ends_statement(&text[space.start + nl + 1..]))
}

/// True when the line after a newline is no longer SQL: a code fence or a line of prose.
fn ends_statement(rest: &str) -> bool {
    let line = rest.split('\n').next().unwrap_or("").trim();
    if line.starts_with("```")
        || line.starts_with("~~~")
        || line.starts_with("**")
        || line.starts_with("# ")
        || line.starts_with("##")
    {
        return true;
    }
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else { return false };
    let title_case = |w: &str| {
        let mut chars = w.chars();
        chars.next().is_some_and(|c| c.is_uppercase())
            && chars.any(|c| c.is_lowercase())
            && w.chars().all(char::is_alphabetic)
    };
    if let Some(label) = first.strip_suffix(':') {
        // "Explanation:", "Note:", "Output:"
        return title_case(label) && !is_clause_keyword(label);
    }
    // A sentence: "This query returns...", "The result is..."
    title_case(first)
        && !is_clause_keyword(first)
        && words.take(2).filter(|w| w.chars().all(char::is_alphabetic)).count() == 2
}

fn is_clause_keyword(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "ALL",
        "AND",
        "AS",
        "ASC",
        "BETWEEN",
        "BY",
        "CASE",
        "CROSS",
        "DESC",
        "DISTINCT",
        "ELSE",
        "END",
        "EXCEPT",
        "EXISTS",
        "FETCH",
        "FILTER",
        "FROM",
        "FULL",
        "GROUP",
        "HAVING",
        "ILIKE",
        "IN",
        "INNER",
        "INTERSECT",
        "IS",
        "JOIN",
        "LATERAL",
        "LEFT",
        "LIKE",
        "LIMIT",
        "NATURAL",
        "NOT",
        "NULL",
        "OFFSET",
        "ON",
        "OR",
        "ORDER",
        "OUTER",
        "OVER",
        "PARTITION",
        "RIGHT",
        "SELECT",
        "THEN",
        "UNION",
        "USING",
        "VALUES",
        "WHEN",
        "WHERE",
        "WINDOW",
        "WITH",
    ];
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Characters markdown escapes with a backslash; a backslash is never valid in SQL code.
fn is_markdown_escapable(c: char) -> bool {
    matches!(
        c,
        '_' | '*' | '#' | '[' | ']' | '<' | '>' | '|' | '~' | '`' | '-' | '+' | '.' | '!' | '(' | ')' | '{' | '}' | '='
    )
}

fn has_markdown_escape(code: &str) -> bool {
    code.as_bytes().windows(2).any(|w| w[0] == b'\\' && is_markdown_escapable(w[1] as char))
}

fn unescape_markdown(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| is_markdown_escapable(*n)) {
            continue;
        }
        out.push(c);
    }
    out
}

/// `name` → name or "Name": each dotted part quoted as PostgreSQL needs. Left alone when the pair
/// spans lines or holds a double quote, where the intent is not clear.
fn backticks_to_quotes(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(['`', '\n', '"']) {
            Some(close) if close > 0 && after[close..].starts_with('`') => {
                let name = &after[..close];
                let parts: Vec<&str> = name.split('.').collect();
                if parts.iter().all(|p| !p.is_empty()) {
                    out.push_str(&parts.iter().map(|p| quote_ident(p)).collect::<Vec<_>>().join("."));
                } else {
                    out.push_str(&quote_ident(name));
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('`');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A literal read with MySQL's backslash escapes, rewritten for standard_conforming_strings:
/// `\'` becomes `''`; other backslash pairs are kept as they were written.
fn mysql_literal_to_standard(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\'') => out.push_str("''"),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A literal read with bare apostrophes, with each inner quote doubled.
fn double_inner_quotes(literal: &str) -> String {
    let Some(body) = literal.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) else {
        return literal.to_string();
    };
    format!("'{}'", body.replace("''", "'").replace('\'', "''"))
}
