//! SQL extraction from what models write: fences, prose, labels, tags, JSON envelopes, markdown
//! escaping and MySQL habits around one statement. Only isolates the statement; PostgreSQL's parser
//! judges it later. A reply without SQL is a refusal only when it says so plainly; anything else the
//! model wrote instead of SQL is `NoSql`, never an answer.
//!
//! Every pass is linear in the reply: reasoning is dropped in one forward pass that lets the host
//! check for interrupts, and what follows reads at most `MAX_VISIBLE_BYTES` of visible text, each
//! line looking at most one line ahead.

mod refusal;
mod statement;
#[cfg(test)]
mod tests;
mod visible;

use crate::lang::sql::{self, Kind, Token};
use refusal::{compact_reason, plain_refusal};
use serde_json::Value;
use statement::statements_from;
pub use visible::{prefix, visible_text, MAX_VISIBLE_BYTES};

#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    /// One SQL statement, without trailing semicolon.
    Sql(String),
    /// Several statements where one was asked for, each cleaned, joined with `;` and a line break:
    /// refused as a whole, never cut to the first.
    Several(String),
    /// The model said plainly that the question cannot be answered from the schema; the text is
    /// its reason.
    Refusal(String),
    /// Neither SQL nor a refusal: an empty reply, prose, a JSON envelope with an empty query.
    NoSql,
}

/// A line starting with this marker declines the question (the generation prompt asks for it).
pub const CANNOT_ANSWER_MARKER: &str = "CANNOT_ANSWER";

/// A query start is judged on its line and the next, at most this many bytes...
const LOOKAHEAD_BYTES: usize = 512;
/// ...and at most this many tokens besides whitespace and comments (`WITH name (a, b) AS`).
const LOOKAHEAD_TOKENS: usize = 48;

/// What the reply holds. `check_interrupts` is called during the long passes (see
/// `visible_text`); a check that unwinds ends the extraction.
pub fn extract_sql(reply: &str, check_interrupts: &mut dyn FnMut()) -> Extracted {
    let visible = visible_text(reply, check_interrupts);
    check_interrupts();
    extract_visible(visible.trim())
}

fn extract_visible(text: &str) -> Extracted {
    if text.is_empty() {
        return Extracted::NoSql;
    }
    if let Some(reason) = marked_refusal(text) {
        return Extracted::Refusal(reason);
    }
    let envelope = json_envelope(text);
    if let Some(found @ (Extracted::Sql(_) | Extracted::Several(_))) = envelope {
        return found;
    }
    let in_tags = tagged(text, "sql").or_else(|| tagged(text, "query"));
    if let Some(found) = in_tags.and_then(find_sql).or_else(|| find_sql(text)) {
        return found;
    }
    if let Some(found) = envelope {
        return found;
    }
    plain_refusal(text).map_or(Extracted::NoSql, Extracted::Refusal)
}

/// The reason after a `CANNOT_ANSWER:` line, if the reply has one.
fn marked_refusal(text: &str) -> Option<String> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        let bare = line.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '`' | '>' | '_'));
        let Some(head) = bare.get(..CANNOT_ANSWER_MARKER.len()) else { continue };
        if !head.eq_ignore_ascii_case(CANNOT_ANSWER_MARKER) {
            continue;
        }
        let rest = bare[CANNOT_ANSWER_MARKER.len()..]
            .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '-' | '*' | '`'));
        // The reason may follow on the next lines.
        return Some(compact_reason(if rest.trim().is_empty() { &text[offset..] } else { rest }));
    }
    None
}

/// Replies like `{"sql": "..."}` (possibly fenced or after prose), `{"sql": null, "reason": "..."}`
/// or `{"answerable": false, ...}`. Only an object that no SQL precedes counts: JSON in a literal
/// of a statement is the statement's data. An empty query is no refusal unless the reason says so.
fn json_envelope(text: &str) -> Option<Extracted> {
    let start = text.find('{')?;
    if find_sql(&text[..start]).is_some() {
        return None;
    }
    // The first value only: prose may follow it. serde_json refuses nesting beyond 128 levels.
    let value: Value = serde_json::Deserializer::from_str(&text[start..]).into_iter().next()?.ok()?;
    let object = value.as_object()?;
    let field =
        |names: &[&str]| object.iter().find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n))).map(|(_, v)| v);
    let sql = field(&["sql", "query", "sql_query", "postgresql", "statement"]);
    let answerable = field(&["answerable", "can_answer"]);
    if sql.is_none() && answerable.is_none() {
        return None;
    }
    let reason = field(&["reason", "refusal", "error", "explanation", "message"]).and_then(Value::as_str).unwrap_or("");
    let sql = sql.and_then(Value::as_str).unwrap_or("").trim();
    if let Some(reason) = marked_refusal(sql) {
        return Some(Extracted::Refusal(reason));
    }
    if let Some(found) = find_sql(sql) {
        return Some(found);
    }
    if answerable == Some(&Value::Bool(false)) {
        return Some(Extracted::Refusal(compact_reason(reason)));
    }
    Some(plain_refusal(reason).or_else(|| plain_refusal(sql)).map_or(Extracted::NoSql, Extracted::Refusal))
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
fn find_sql(text: &str) -> Option<Extracted> {
    let body = text.trim_start();
    if let Some(at) = query_start(body) {
        if let Some(found) = statements_from(&body[at..]) {
            return Some(found);
        }
    }
    let blocks = fenced_blocks(text);
    let sql_blocks = || blocks.iter().filter(|b| b.holds_sql());
    for block in sql_blocks() {
        if let Some(found) = find_query(block.body) {
            return Some(found);
        }
    }
    let outside = outside_fences(text, &blocks);
    if let Some(found) = find_query(&outside).or_else(|| inline_code_query(&outside)) {
        return Some(found);
    }
    sql_blocks()
        .find(|b| b.labelled_sql())
        .and_then(|b| statements_from(b.body))
        .or_else(|| statement_keyword(body, false).then(|| statements_from(body)).flatten())
}

/// The statements from the first line of `text` that starts a query.
fn find_query(text: &str) -> Option<Extracted> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(at) = query_start(&text[offset..]) {
            if let Some(found) = statements_from(&text[offset + at..]) {
                return Some(found);
            }
        }
        offset += line.len();
    }
    None
}

/// Byte offset of the query in `text` (which starts at a line start) when its line starts one,
/// possibly after a label such as `SQL:`.
fn query_start(text: &str) -> Option<usize> {
    let line = text.split('\n').next().unwrap_or("");
    let indent = line.len() - line.trim_start().len();
    let labelled = indent + skip_label(&line[indent..]);
    if starts_query(&text[indent..]) {
        return Some(indent);
    }
    (labelled != indent && starts_query(&text[labelled..])).then_some(labelled)
}

/// A query written as inline code in prose: "The query is `SELECT ...`."
fn inline_code_query(text: &str) -> Option<Extracted> {
    text.split('`').skip(1).step_by(2).filter(|code| starts_query(code)).find_map(statements_from)
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
/// one of those. Title-case keywords are prose ("Select the...", "With this schema..."). Reads the
/// line and the next one at most, so that every line of a reply can be asked.
fn starts_query(text: &str) -> bool {
    let text = text.trim_start_matches([' ', '\t']);
    if !text.starts_with(|c: char| c == '(' || c.is_ascii_alphabetic()) {
        return false;
    }
    let window = lookahead(text);
    // Most lines start with no query keyword: their first word tells, without scanning.
    let first_word = leading_word(window.trim_start_matches(|c: char| c == '(' || c.is_whitespace()));
    if !["SELECT", "WITH", "VALUES", "TABLE"].iter().any(|k| k.eq_ignore_ascii_case(first_word)) {
        return false;
    }
    let mut tokens = sql::tokens(window)
        .filter(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
        .take(LOOKAHEAD_TOKENS)
        .skip_while(|t| t.text(window) == "(");
    let Some(first) = tokens.next() else { return false };
    let word = first.text(window);
    if first.kind != Kind::Word || !is_keyword_case(word) {
        return false;
    }
    match word.to_ascii_uppercase().as_str() {
        "SELECT" => true,
        "WITH" => cte_follows(window, &mut tokens),
        "VALUES" => tokens.next().is_some_and(|t| t.text(window) == "("),
        "TABLE" => {
            let line = window[first.range.end..].split('\n').next().unwrap_or("");
            let name = line.trim().trim_end_matches(';').trim_end();
            !name.is_empty() && !name.contains(char::is_whitespace)
        }
        _ => false,
    }
}

/// The start of `text` a query start is judged on: its line and the next, within a byte bound.
fn lookahead(text: &str) -> &str {
    let text = prefix(text, LOOKAHEAD_BYTES);
    let first = text.find('\n').map_or(text.len(), |n| n + 1);
    let second = text[first..].find('\n').map_or(text.len(), |n| first + n);
    &text[..second]
}

/// `[RECURSIVE] name [(columns)] AS` after WITH; the name may carry markdown escapes
/// (`sales\_2024`), and may be on the next line.
fn cte_follows(window: &str, tokens: &mut impl Iterator<Item = Token>) -> bool {
    let mut next = tokens.next();
    if next.as_ref().is_some_and(|t| t.text(window).eq_ignore_ascii_case("recursive")) {
        next = tokens.next();
    }
    let Some(name) = next.filter(|t| matches!(t.kind, Kind::Word | Kind::QuotedIdent)) else { return false };
    // Pieces glued to the name: `\` and `_2024` in `sales\_2024`.
    let mut end = name.range.end;
    let mut next = tokens.next();
    while let Some(t) = next.as_ref().filter(|t| t.range.start == end && glues(t, window)) {
        end = t.range.end;
        next = tokens.next();
    }
    if next.as_ref().is_some_and(|t| t.text(window) == "(") {
        next = tokens.find(|t| t.text(window) == ")").and_then(|_| tokens.next());
    }
    next.is_some_and(|t| t.kind == Kind::Word && t.text(window).eq_ignore_ascii_case("as"))
}

fn glues(token: &Token, window: &str) -> bool {
    matches!(token.kind, Kind::Word | Kind::Number) || token.text(window) == "\\"
}

fn leading_word(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

fn is_keyword_case(word: &str) -> bool {
    !word.is_empty() && (word == word.to_ascii_uppercase() || word == word.to_ascii_lowercase())
}

/// True when `text` starts a statement of any kind: after a `;` this means the reply holds another.
fn starts_statement(text: &str) -> bool {
    starts_query(text) || statement_keyword(text, true)
}

/// Statements other than queries: returned as SQL so the validator refuses them by name. At the
/// start of a reply only upper case counts, since "Update:" or "delete the..." are prose; right
/// after a `;`, lower case is SQL too.
fn statement_keyword(text: &str, lower_too: bool) -> bool {
    const KEYWORDS: &[&str] = &[
        "ALTER", "ANALYZE", "CALL", "COPY", "CREATE", "DELETE", "DO", "DROP", "EXPLAIN", "GRANT", "INSERT", "MERGE",
        "REVOKE", "SET", "SHOW", "TRUNCATE", "UPDATE", "VACUUM",
    ];
    let word = leading_word(text);
    if word.len() > 8 {
        return false;
    }
    let upper = word.to_ascii_uppercase();
    let known = KEYWORDS.contains(&upper.as_str()) && (word == upper || (lower_too && is_keyword_case(word)));
    known && text[word.len()..].starts_with(|c: char| c.is_whitespace() || c == ';')
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
