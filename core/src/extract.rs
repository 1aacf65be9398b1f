//! SQL extraction from what models write: fences, prose, labels, tags, JSON envelopes, markdown
//! escaping and MySQL habits around one statement. Only isolates the statement; PostgreSQL's parser
//! judges it later.

use crate::catalog::quote_ident;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    /// One SQL statement, without trailing semicolon.
    Sql(String),
    /// The model said the question cannot be answered from the schema; the text is its reason.
    Refusal(String),
    /// Neither SQL nor a recognisable refusal.
    Empty,
}

/// A line starting with this marker declines the question (the generation prompt asks for it).
pub const CANNOT_ANSWER_MARKER: &str = "CANNOT_ANSWER";

/// Refusal reasons are shown to users; a model that rambles is cut here.
const MAX_REASON_CHARS: usize = 400;

pub fn extract_sql(reply: &str) -> Extracted {
    let text = strip_reasoning(reply);
    let text = text.trim();
    if text.is_empty() {
        return Extracted::Empty;
    }
    if let Some(reason) = marked_refusal(text) {
        return Extracted::Refusal(reason);
    }
    if let Some(found) = from_json(text) {
        return found;
    }
    let inner = tagged(text, "sql").or_else(|| tagged(text, "query"));
    if let Some(sql) = inner.and_then(find_sql).or_else(|| find_sql(text)) {
        return Extracted::Sql(sql);
    }
    refusal_or_empty(text)
}

/// Drops `<think>` style reasoning that some models put before their reply; an unclosed block
/// means the reply is all reasoning.
pub(crate) fn strip_reasoning(reply: &str) -> String {
    let mut text = reply.to_string();
    for tag in ["think", "thinking", "reasoning"] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        loop {
            // ASCII lowercasing keeps byte offsets, so positions found in `lower` index `text`.
            let lower = text.to_ascii_lowercase();
            let Some(start) = lower.find(&open) else { break };
            match lower[start..].find(&close) {
                Some(len) => text.replace_range(start..start + len + close.len(), ""),
                None => text.truncate(start),
            }
        }
    }
    text
}

/// The reason after a `CANNOT_ANSWER:` line, if the reply has one.
fn marked_refusal(text: &str) -> Option<String> {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let bare = line.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '`' | '>' | '_'));
        let Some(head) = bare.get(..CANNOT_ANSWER_MARKER.len()) else { continue };
        if !head.eq_ignore_ascii_case(CANNOT_ANSWER_MARKER) {
            continue;
        }
        let rest = bare[CANNOT_ANSWER_MARKER.len()..]
            .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '-' | '*' | '`'));
        let reason = if rest.trim().is_empty() {
            // The reason may follow on the next lines.
            lines.collect::<Vec<_>>().join(" ")
        } else {
            rest.to_string()
        };
        return Some(compact_reason(&reason));
    }
    None
}

/// Replies like `{"sql": "..."}` (possibly fenced or with prose around), or `{"sql": null,
/// "reason": "..."}`.
fn from_json(text: &str) -> Option<Extracted> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let value: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let object = value.as_object()?;
    let field =
        |names: &[&str]| object.iter().find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n))).map(|(_, v)| v);
    let sql = field(&["sql", "query", "sql_query", "postgresql", "statement"]);
    let reason = field(&["reason", "refusal", "error", "explanation", "message"]).and_then(Value::as_str);
    match (sql.and_then(Value::as_str), reason) {
        (Some(sql), _) if !sql.trim().is_empty() => Some(match marked_refusal(sql) {
            Some(reason) => Extracted::Refusal(reason),
            None => match find_sql(sql) {
                Some(sql) => Extracted::Sql(sql),
                None => refusal_or_empty(reason.unwrap_or(sql)),
            },
        }),
        (_, Some(reason)) if sql.is_some() || field(&["answerable", "can_answer"]).is_some() => {
            Some(refusal_or_empty(reason))
        }
        _ => None,
    }
}

/// The text between `<tag>` and `</tag>` (case-insensitive); to the end when unclosed.
fn tagged<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let open = format!("<{tag}>");
    let start = lower.find(&open)? + open.len();
    let end = lower[start..].find(&format!("</{tag}>")).map_or(text.len(), |n| start + n);
    Some(&text[start..end])
}

/// Finds the statement: a reply that starts with a query, else the first fenced query, else the
/// first query line outside fences, else a non-query statement the validator will refuse with a
/// message the repair step can use.
fn find_sql(text: &str) -> Option<String> {
    let first_line = text.trim_start().lines().next().unwrap_or("");
    if let Some(start) = query_start(first_line) {
        let line_offset = text.len() - text.trim_start().len();
        if let Some(sql) = clean_statement(&text[line_offset + start..]) {
            return Some(sql);
        }
    }
    let blocks = fenced_blocks(text);
    let sql_blocks = || blocks.iter().filter(|b| b.holds_sql());
    for block in sql_blocks() {
        if let Some(sql) = find_query(block.body) {
            return Some(sql);
        }
    }
    let outside = outside_fences(text, &blocks);
    if let Some(sql) = find_query(&outside).or_else(|| inline_code_query(&outside)) {
        return Some(sql);
    }
    sql_blocks()
        .find(|b| b.labelled_sql())
        .and_then(|b| clean_statement(b.body))
        .or_else(|| starts_with_statement_keyword(first_line).then(|| clean_statement(text)).flatten())
}

/// Cuts the statement starting at the first line of `text` that starts a query.
fn find_query(text: &str) -> Option<String> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(start) = query_start(line) {
            if let Some(sql) = clean_statement(&text[offset + start..]) {
                return Some(sql);
            }
        }
        offset += line.len();
    }
    None
}

/// Byte offset of the query in a line that starts one, possibly after a label such as `SQL:`.
fn query_start(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start().len();
    let labelled = indent + skip_label(&line[indent..]);
    [indent, labelled].into_iter().find(|&at| starts_query(&line[at..]))
}

/// A query written as inline code in prose: "The query is `SELECT ...`."
fn inline_code_query(text: &str) -> Option<String> {
    text.split('`').skip(1).step_by(2).filter(|code| starts_query(code)).find_map(clean_statement)
}

/// Length of a leading label like `SQL:`, `**SQL Query:**`, `Answer -` that precedes a query.
fn skip_label(line: &str) -> usize {
    let body = line.trim_start_matches(['*', '_']);
    let Some(colon) = body.find(':') else { return 0 };
    let label = &body[..colon];
    let words = label.split_whitespace().count();
    let plain = label.chars().all(|c| c.is_alphanumeric() || c == ' ' || c == '*' || c == '_');
    if words == 0 || words > 4 || !plain {
        return 0;
    }
    let after = &body[colon + 1..];
    let after = after.trim_start_matches(['*', '_']);
    let after = after.trim_start();
    line.len() - after.len()
}

/// True when `text` begins a query: SELECT, WITH <name> AS, VALUES (, TABLE <name>, or ( before
/// one of those. Title-case keywords are prose ("Select the...", "With this schema...").
fn starts_query(text: &str) -> bool {
    let text = text.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let word = leading_word(text);
    let rest = &text[word.len()..];
    if !is_keyword_case(word) {
        return false;
    }
    match word.to_ascii_uppercase().as_str() {
        "SELECT" => true,
        "WITH" => cte_follows(rest),
        "VALUES" => rest.trim_start().starts_with('('),
        "TABLE" => {
            let line = rest.lines().next().unwrap_or("");
            let mut tokens = line.trim().trim_end_matches(';').split_whitespace();
            tokens.next().is_some() && tokens.next().is_none()
        }
        _ => false,
    }
}

fn leading_word(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

fn is_keyword_case(word: &str) -> bool {
    !word.is_empty() && (word == word.to_ascii_uppercase() || word == word.to_ascii_lowercase())
}

/// `[RECURSIVE] name [(columns)] AS` after WITH.
fn cte_follows(rest: &str) -> bool {
    let mut rest = rest.trim_start();
    let word = leading_word(rest);
    if word.eq_ignore_ascii_case("recursive") {
        rest = rest[word.len()..].trim_start();
    }
    rest = match rest.strip_prefix('"') {
        Some(quoted) => match quoted.find('"') {
            Some(end) => &quoted[end + 1..],
            None => return false,
        },
        None => {
            let name = leading_word(rest);
            if name.is_empty() {
                return false;
            }
            &rest[name.len()..]
        }
    };
    rest = rest.trim_start();
    if let Some(columns) = rest.strip_prefix('(') {
        match columns.find(')') {
            Some(end) => rest = columns[end + 1..].trim_start(),
            None => return false,
        }
    }
    leading_word(rest).eq_ignore_ascii_case("as")
}

/// Statements other than queries: returned as SQL so the validator refuses them by name. Only
/// upper case counts, since "Update:" or "Delete the..." are prose.
fn starts_with_statement_keyword(line: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "ALTER", "ANALYZE", "CALL", "COPY", "CREATE", "DELETE", "DO", "DROP", "EXPLAIN", "GRANT", "INSERT", "MERGE",
        "REVOKE", "SET", "SHOW", "TRUNCATE", "UPDATE", "VACUUM",
    ];
    let line = line.trim_start();
    let word = leading_word(line);
    KEYWORDS.contains(&word) && line[word.len()..].starts_with(char::is_whitespace)
}

struct Fenced<'a> {
    info: &'a str,
    body: &'a str,
    /// Byte range of the whole block in the reply, fence lines included.
    span: std::ops::Range<usize>,
}

impl Fenced<'_> {
    fn labelled_sql(&self) -> bool {
        let info = self.info.to_ascii_lowercase();
        info.contains("sql") || info.contains("postgres")
    }

    /// Blocks that may hold the query: SQL-labelled, unlabelled or plain text (not Python...).
    fn holds_sql(&self) -> bool {
        self.labelled_sql() || matches!(self.info.to_ascii_lowercase().as_str(), "" | "text" | "txt" | "plaintext")
    }
}

/// Markdown code fences (``` or ~~~). A fence left open runs to the end of the reply.
fn fenced_blocks(text: &str) -> Vec<Fenced<'_>> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    let mut open: Option<(char, usize, &str, usize, usize)> = None; // marker, run, info, block start, body start
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let Some(marker) = marker else { continue };
        let run = trimmed.chars().take_while(|c| *c == marker).count();
        if run < 3 {
            continue;
        }
        match open {
            Some((m, r, info, start, body_start)) if m == marker && run >= r && trimmed.len() == run => {
                blocks.push(Fenced { info, body: &text[body_start..line_start], span: start..offset });
                open = None;
            }
            Some(_) => {}
            None => {
                let info = trimmed[run..].trim();
                match info.find(&marker.to_string().repeat(run)) {
                    // A whole block on one line: ```sql SELECT 1```
                    Some(close) => {
                        let inner = &info[..close];
                        let (info, body) = match inner.split_once(char::is_whitespace) {
                            Some((label, body)) if label.to_ascii_lowercase().contains("sql") => (label, body),
                            _ => ("", inner),
                        };
                        blocks.push(Fenced { info, body, span: line_start..offset });
                    }
                    None => open = Some((marker, run, info, line_start, offset)),
                }
            }
        }
    }
    if let Some((_, _, info, start, body_start)) = open {
        blocks.push(Fenced { info, body: &text[body_start..], span: start..text.len() });
    }
    blocks
}

/// The reply with every fenced block blanked out (a blank line keeps paragraphs apart).
fn outside_fences(text: &str, blocks: &[Fenced]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for block in blocks {
        out.push_str(&text[last..block.span.start]);
        out.push_str("\n\n");
        last = block.span.end;
    }
    out.push_str(&text[last..]);
    out
}

/// The lexical pieces of a statement: rewrites apply to code only, never inside literals.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Code,
    Literal(Quirk),
    QuotedIdent,
    DollarQuoted,
    Comment,
}

/// How quotes inside a '...' literal are read. Standard SQL first; the others only when standard
/// reading leaves a literal open, so they can only turn a syntax error into a statement.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Quirk {
    None,
    /// MySQL's `\'` escapes a quote.
    MysqlEscapes,
    /// A quote between two letters is an apostrophe: 'Women's'.
    BareApostrophes,
}

struct Scanned {
    pieces: Vec<(Kind, std::ops::Range<usize>)>,
    /// A literal, quoted identifier or comment runs to the end of the text.
    unterminated: bool,
}

/// Scans the first statement of `text`: up to a `;` outside literals and comments, a code fence or
/// a line of prose. `quirk` says how to read quotes inside '...' literals.
fn scan_statement(text: &str, quirk: Quirk) -> Scanned {
    let b = text.as_bytes();
    let mut pieces = Vec::new();
    let mut unterminated = false;
    let mut code_start = 0;
    let mut i = 0;
    let end = loop {
        let Some(&c) = b.get(i) else { break b.len() };
        let next = b.get(i + 1).copied();
        let piece = match c {
            b';' => break i,
            b'\n' if ends_statement(&text[i + 1..]) => break i,
            b'\'' => {
                let e_prefix = i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !is_ident_byte(b[i - 2]));
                // E'' literals have PostgreSQL's own backslash escapes.
                let quirk = if e_prefix { Quirk::None } else { quirk };
                Some((Kind::Literal(quirk), literal_end(b, i, e_prefix, quirk)))
            }
            b'"' => Some((Kind::QuotedIdent, quoted_end(b, i, b'"'))),
            b'-' if next == Some(b'-') => Some((Kind::Comment, Some(text[i..].find('\n').map_or(b.len(), |n| i + n)))),
            b'/' if next == Some(b'*') => Some((Kind::Comment, block_comment_end(b, i))),
            b'$' if i == 0 || !is_ident_byte(b[i - 1]) => dollar_tag(&text[i..]).map(|tag| {
                let body = i + tag.len();
                (Kind::DollarQuoted, text[body..].find(tag).map(|n| body + n + tag.len()))
            }),
            _ => None,
        };
        match piece {
            Some((kind, piece_end)) => {
                if code_start < i {
                    pieces.push((Kind::Code, code_start..i));
                }
                let piece_end = piece_end.unwrap_or_else(|| {
                    unterminated = true;
                    b.len()
                });
                pieces.push((kind, i..piece_end));
                i = piece_end;
                code_start = i;
            }
            None => i += 1,
        }
    };
    if code_start < end {
        pieces.push((Kind::Code, code_start..end));
    }
    Scanned { pieces, unterminated }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// End (exclusive) of a quoted token opened at `start`; doubled quotes stay inside.
fn quoted_end(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            c if c == quote => {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// End (exclusive) of a '...' literal opened at `start`.
fn literal_end(b: &[u8], start: usize, e_prefix: bool, quirk: Quirk) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if e_prefix || quirk == Quirk::MysqlEscapes => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' if quirk == Quirk::BareApostrophes && is_letter_at(b, i - 1) && is_letter_at(b, i + 1) => i += 1,
            b'\'' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn is_letter_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|c| c.is_ascii_alphabetic())
}

/// End of a `/* */` comment; PostgreSQL nests them.
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

/// `$$` or `$tag$` at the start of `text` (a tag does not start with a digit: `$1` is a parameter).
fn dollar_tag(text: &str) -> Option<&str> {
    let rest = text.get(1..)?;
    let tag_len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let tag = &rest[..tag_len];
    let valid = tag.chars().next().is_none_or(|c| !c.is_ascii_digit());
    (valid && rest[tag_len..].starts_with('$')).then(|| &text[..tag_len + 2])
}

/// True when the line after a newline is no longer SQL: a code fence or a line of prose.
fn ends_statement(rest: &str) -> bool {
    let line = rest.lines().next().unwrap_or("").trim();
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

/// Cuts the first statement out of `text` and undoes markdown escaping and MySQL quoting; None when
/// nothing but comments and whitespace remains.
fn clean_statement(text: &str) -> Option<String> {
    let mut scanned = scan_statement(text, Quirk::None);
    if scanned.unterminated {
        // 'Women\'s' is MySQL's escaped quote; as standard SQL it leaves a literal open, so reading
        // it MySQL's way can only turn a syntax error into a statement.
        // 'Women's' is an apostrophe the model forgot to double.
        if let Some(repaired) = [Quirk::MysqlEscapes, Quirk::BareApostrophes]
            .into_iter()
            .map(|quirk| scan_statement(text, quirk))
            .find(|s| !s.unterminated)
        {
            scanned = repaired;
        }
    }
    let pieces = &scanned.pieces;
    let is_filler = |(kind, range): &&(Kind, std::ops::Range<usize>)| {
        *kind == Kind::Comment || (*kind == Kind::Code && text[range.clone()].trim().is_empty())
    };
    let first = pieces.iter().position(|p| !is_filler(&p))?;
    let last = pieces.iter().rposition(|p| !is_filler(&p))?;
    let markdown_escaped = pieces.iter().any(|(kind, r)| *kind == Kind::Code && has_markdown_escape(&text[r.clone()]));
    let mut sql = String::with_capacity(text.len());
    for (kind, range) in &pieces[first..=last] {
        let piece = &text[range.clone()];
        match kind {
            Kind::Code => sql.push_str(&backticks_to_quotes(&unescape_markdown(piece))),
            Kind::Literal(quirk) => {
                let piece =
                    if markdown_escaped { piece.replace("\\_", "_").replace("\\*", "*") } else { piece.to_string() };
                match quirk {
                    Quirk::None => sql.push_str(&piece),
                    Quirk::MysqlEscapes => sql.push_str(&mysql_literal_to_standard(&piece)),
                    Quirk::BareApostrophes => sql.push_str(&double_inner_quotes(&piece)),
                }
            }
            _ => sql.push_str(piece),
        }
    }
    let sql = sql.trim().to_string();
    (!sql.is_empty()).then_some(sql)
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
        match after.find('`') {
            Some(close) if close > 0 && !after[..close].contains(['\n', '"']) => {
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
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('\'') => out.push_str("''"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
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

fn refusal_or_empty(text: &str) -> Extracted {
    let reason = compact_reason(text);
    if reason.chars().any(char::is_alphanumeric) {
        Extracted::Refusal(reason)
    } else {
        Extracted::Empty
    }
}

/// One line of plain text: no fences or bold markers, whitespace collapsed, length bounded.
fn compact_reason(text: &str) -> String {
    let words: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("```") && !l.trim_start().starts_with("~~~"))
        .flat_map(str::split_whitespace)
        .collect();
    let joined = words.join(" ").replace("**", "");
    if joined.chars().count() <= MAX_REASON_CHARS {
        return joined;
    }
    let cut: String = joined.chars().take(MAX_REASON_CHARS).collect();
    let cut = cut.rfind(' ').map_or(cut.as_str(), |n| &cut[..n]);
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(reply: &str) -> String {
        match extract_sql(reply) {
            Extracted::Sql(s) => s,
            other => panic!("expected SQL from {reply:?}, got {other:?}"),
        }
    }

    fn refusal(reply: &str) -> String {
        match extract_sql(reply) {
            Extracted::Refusal(s) => s,
            other => panic!("expected a refusal from {reply:?}, got {other:?}"),
        }
    }

    #[test]
    fn plain_statement_loses_its_semicolon() {
        assert_eq!(sql("SELECT 1;"), "SELECT 1");
        assert_eq!(sql("  select count(*) from orders ;  \n"), "select count(*) from orders");
        assert_eq!(sql("WITH t AS (SELECT 1) SELECT * FROM t"), "WITH t AS (SELECT 1) SELECT * FROM t");
        assert_eq!(sql("VALUES (1), (2);"), "VALUES (1), (2)");
        assert_eq!(sql("TABLE orders;"), "TABLE orders");
        assert_eq!(sql("(SELECT 1) UNION (SELECT 2)"), "(SELECT 1) UNION (SELECT 2)");
    }

    #[test]
    fn sql_fence_with_prose_around() {
        let reply = "Here is the query:\n\n```sql\nSELECT name\nFROM customers;\n```\n\nIt lists every customer.";
        assert_eq!(sql(reply), "SELECT name\nFROM customers");
    }

    #[test]
    fn unlabelled_and_other_fences() {
        assert_eq!(sql("```\nSELECT 1\n```"), "SELECT 1");
        assert_eq!(sql("~~~postgresql\nSELECT 2\n~~~"), "SELECT 2");
        assert_eq!(sql("```sql SELECT 3```"), "SELECT 3");
        assert_eq!(sql("```sql\nSELECT 4"), "SELECT 4", "a fence left open runs to the end");
    }

    #[test]
    fn several_fences_take_the_query() {
        let reply = "The tables:\n```text\ncustomers(id, name)\n```\nThe query:\n```sql\n-- top customers\nSELECT id FROM customers\n```\nAlternative:\n```sql\nSELECT 2\n```";
        assert_eq!(sql(reply), "SELECT id FROM customers");
        let reply = "```python\ncur.execute(\"SELECT 1\")\n```\n```sql\nSELECT 5\n```";
        assert_eq!(sql(reply), "SELECT 5");
    }

    #[test]
    fn prose_before_and_after_without_fences() {
        let reply =
            "To find this, we count the orders.\n\nSELECT count(*)\nFROM orders\n\nThis query counts all orders.";
        assert_eq!(sql(reply), "SELECT count(*)\nFROM orders");
        let reply = "SELECT a FROM t\nExplanation: it reads t.";
        assert_eq!(sql(reply), "SELECT a FROM t");
        let reply = "SELECT a\nFROM t\n\nNote:\nthe column a is text.";
        assert_eq!(sql(reply), "SELECT a\nFROM t");
    }

    #[test]
    fn stray_closing_fence_after_the_statement() {
        let reply = " SELECT sum(x)\nFROM t;\n```\n\nThis query calculates the sum of x in t.\n```";
        assert_eq!(sql(reply), "SELECT sum(x)\nFROM t");
        assert_eq!(sql(" SELECT 1\nFROM t;\n```"), "SELECT 1\nFROM t");
    }

    #[test]
    fn labels_before_the_query() {
        assert_eq!(sql("SQL: SELECT 1"), "SELECT 1");
        assert_eq!(sql("**SQL Query:** SELECT 1;"), "SELECT 1");
        assert_eq!(sql("sql\nSELECT 1"), "SELECT 1");
        assert_eq!(sql("The query is `SELECT count(*) FROM t`."), "SELECT count(*) FROM t");
    }

    #[test]
    fn only_the_first_statement() {
        assert_eq!(sql("SELECT 1; SELECT 2;"), "SELECT 1");
        assert_eq!(sql("SELECT 'a;b' AS x; DROP TABLE t"), "SELECT 'a;b' AS x");
        assert_eq!(sql("SELECT \"odd;name\" FROM t; SELECT 2"), "SELECT \"odd;name\" FROM t");
        assert_eq!(sql("SELECT $$a;b$$, $q$c;'d$q$; SELECT 2"), "SELECT $$a;b$$, $q$c;'d$q$");
        assert_eq!(sql("SELECT 1 -- one; two\n+ 1; SELECT 3"), "SELECT 1 -- one; two\n+ 1");
        assert_eq!(sql("SELECT 1 /* a; /* nested; */ b; */ + 1; SELECT 3"), "SELECT 1 /* a; /* nested; */ b; */ + 1");
        assert_eq!(sql("SELECT E'it\\'s;' AS x; SELECT 2"), "SELECT E'it\\'s;' AS x");
        assert_eq!(sql("SELECT $1; SELECT 2"), "SELECT $1");
    }

    #[test]
    fn comments_around_are_dropped() {
        assert_eq!(
            sql("-- total orders\nSELECT count(*) FROM orders -- all of them\n;"),
            "SELECT count(*) FROM orders"
        );
        assert_eq!(sql("```sql\n/* the query */\nSELECT 1\n```"), "SELECT 1");
    }

    #[test]
    fn markdown_escapes_are_undone() {
        assert_eq!(
            sql("SELECT customer\\_id, COUNT(\\*) FROM sales\\_1k GROUP BY 1"),
            "SELECT customer_id, COUNT(*) FROM sales_1k GROUP BY 1"
        );
        assert_eq!(sql("SELECT a\\_b FROM t WHERE c = 'x\\_y'"), "SELECT a_b FROM t WHERE c = 'x_y'");
        // Without markdown escaping elsewhere, a LIKE escape in a literal is left alone.
        assert_eq!(sql("SELECT a FROM t WHERE c LIKE 'x\\_%'"), "SELECT a FROM t WHERE c LIKE 'x\\_%'");
    }

    #[test]
    fn unescaped_quotes_in_literals() {
        assert_eq!(
            sql("SELECT * FROM event WHERE name = 'Women\\'s Soccer';"),
            "SELECT * FROM event WHERE name = 'Women''s Soccer'"
        );
        assert_eq!(
            sql("SELECT id FROM people WHERE name = 'O'Brien' AND x = 'it''s';"),
            "SELECT id FROM people WHERE name = 'O''Brien' AND x = 'it''s'"
        );
        // A literal ending in a backslash is valid standard SQL and stays as written.
        assert_eq!(sql("SELECT 'C:\\' AS dir"), "SELECT 'C:\\' AS dir");
    }

    #[test]
    fn backticks_become_double_quotes_when_safe() {
        assert_eq!(
            sql("SELECT `name`, `Order Date` FROM `shop`.`orders`"),
            "SELECT name, \"Order Date\" FROM shop.orders"
        );
        assert_eq!(sql("SELECT `order` FROM `public.orders`"), "SELECT \"order\" FROM public.orders");
        assert_eq!(sql("SELECT '`x`' AS s"), "SELECT '`x`' AS s");
        assert_eq!(sql("SELECT `a FROM t"), "SELECT `a FROM t");
    }

    #[test]
    fn sql_tags() {
        assert_eq!(sql("<sql>SELECT 1;</sql>"), "SELECT 1");
        assert_eq!(sql("Sure.\n<SQL>\nSELECT 2\n</SQL>\nDone."), "SELECT 2");
    }

    #[test]
    fn json_replies() {
        assert_eq!(sql(r#"{"sql": "SELECT 1;"}"#), "SELECT 1");
        assert_eq!(
            sql("```json\n{\"query\": \"SELECT a\\nFROM t\", \"explanation\": \"reads t\"}\n```"),
            "SELECT a\nFROM t"
        );
        assert_eq!(sql(r#"Here you go: {"SQL": "```sql\nSELECT 3\n```"}"#), "SELECT 3");
        assert_eq!(refusal(r#"{"sql": null, "reason": "There is no salary column."}"#), "There is no salary column.");
        assert_eq!(refusal(r#"{"sql": "CANNOT_ANSWER: no such data"}"#), "no such data");
    }

    #[test]
    fn reasoning_blocks_are_ignored() {
        assert_eq!(sql("<think>Maybe SELECT 2? No.</think>\nSELECT 1"), "SELECT 1");
        assert_eq!(extract_sql("<think>I am still thinking about SELECT"), Extracted::Empty);
    }

    #[test]
    fn non_queries_are_returned_for_the_validator() {
        assert_eq!(sql("```sql\nDELETE FROM orders;\n```"), "DELETE FROM orders");
        assert_eq!(sql("UPDATE orders SET x = 1"), "UPDATE orders SET x = 1");
    }

    #[test]
    fn marker_is_a_refusal() {
        assert_eq!(refusal("CANNOT_ANSWER: the schema has no weather data"), "the schema has no weather data");
        assert_eq!(refusal("**CANNOT_ANSWER**: no prices are stored"), "no prices are stored");
        assert_eq!(
            refusal("I checked.\nCANNOT_ANSWER:\nThere is no table of planets."),
            "There is no table of planets."
        );
        assert_eq!(refusal("cannot_answer - not in schema\n```sql\nSELECT 1\n```"), "not in schema");
        assert_eq!(refusal("CANNOT_ANSWER"), "");
    }

    #[test]
    fn refusal_phrasings() {
        for reply in [
            "I cannot answer this from the schema.",
            "The database does not contain information about art.",
            "Sorry, the provided tables have nothing about dark matter.",
            "I'm sorry, but this question is not related to the data.",
            "This question cannot be answered with the available tables because there is no population column.",
            "Unfortunately, there is no information about national animals in this database.",
        ] {
            assert_eq!(refusal(reply), reply);
        }
        let long = format!("Sorry, {}", "no data ".repeat(200));
        assert!(refusal(&long).chars().count() <= MAX_REASON_CHARS + 1);
        assert_eq!(refusal("**Sorry**,\n\nno   table  holds it."), "Sorry, no table holds it.");
    }

    #[test]
    fn prose_that_mentions_keywords_is_not_sql() {
        refusal("Select a different question, please; the tables hold only orders.");
        refusal("With this schema, there is no way to know the weather.");
        refusal("Update: the data has no prices.");
    }

    #[test]
    fn empty_replies() {
        assert_eq!(extract_sql(""), Extracted::Empty);
        assert_eq!(extract_sql(" \n\t "), Extracted::Empty);
        assert_eq!(extract_sql("```\n```"), Extracted::Empty);
        assert_eq!(extract_sql(";"), Extracted::Empty);
    }

    #[test]
    fn odd_input_never_panics() {
        for reply in [
            "'",
            "\"",
            "$",
            "$$",
            "/*",
            "--",
            "`",
            "```",
            "(",
            "SELECT 'é",
            "SELECT $é$x$é$",
            "é\\",
            "{",
            "{}",
            "<sql>",
            "</sql>",
            "SELECT \\",
            "WITH",
            "WITH x",
            "WITH \"x",
            "TABLE",
            "CANNOT_ANSWEé",
        ] {
            let _ = extract_sql(reply);
        }
    }
}
