//! What the question and the SQL text add to the rows: a title, the select-list order, the ORDER BY
//! key, time parts computed in SQL, and the chart words people use. All optional: empty text gives
//! no hints and the rows alone decide.

use crate::lang::sql::Kind;

/// Words asking for parts of a whole.
const SHARE_WORDS: &[&str] = &[
    "share",
    "proportion",
    "percentage",
    "percent",
    "breakdown",
    "composition",
    "fraction",
    "pie",
    "donut",
    "doughnut",
];
/// Words asking how two quantities relate.
const RELATION_WORDS: &[&str] =
    &["correlat", "relationship", "relation", " vs ", " vs.", "versus", "against", "scatter"];
const DISTRIBUTION_WORDS: &[&str] = &["distribution", "histogram", "spread", "frequenc"];

/// Leading phrases that add nothing to a chart title.
const TITLE_FILLERS: &[&str] = &[
    "please ",
    "can you ",
    "could you ",
    "show me ",
    "show ",
    "give me ",
    "tell me ",
    "plot ",
    "chart ",
    "draw ",
    "display ",
    "list ",
    "return ",
    "get ",
    "find ",
    "what is ",
    "what are ",
    "what's ",
    "what was ",
    "what were ",
    "the ",
];
const TITLE_MAX_CHARS: usize = 80;

#[derive(Debug, Clone, Copy, Default)]
pub struct QuestionHints {
    pub share: bool,
    pub pie: bool,
    pub donut: bool,
    pub relation: bool,
    pub distribution: bool,
}

impl QuestionHints {
    pub fn read(question: &str) -> Self {
        let q = format!(" {} ", question.to_lowercase());
        let any = |words: &[&str]| words.iter().any(|w| q.contains(w));
        QuestionHints {
            share: any(SHARE_WORDS),
            pie: q.contains("pie"),
            donut: any(&["donut", "doughnut"]),
            relation: any(RELATION_WORDS),
            distribution: any(DISTRIBUTION_WORDS),
        }
    }
}

/// A chart title from the question: its first sentence, without filler such as "show me" or
/// "what are the", capitalised, at most 80 characters. None when nothing is left.
pub fn clean_title(question: &str) -> Option<String> {
    let first_sentence = question.split(['?', '\n', '!']).map(str::trim).find(|s| !s.is_empty()).unwrap_or("");
    let first_sentence = first_sentence.split(". ").next().unwrap_or(first_sentence);
    let mut title = first_sentence.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let starts_with = |filler: &str| title.get(..filler.len()).is_some_and(|p| p.eq_ignore_ascii_case(filler));
        match TITLE_FILLERS.iter().find(|f| starts_with(f) && title.len() > f.len()) {
            Some(filler) => title = title[filler.len()..].trim_start().to_string(),
            None => break,
        }
    }
    let title = title.trim_end_matches(['.', ':', ';', ',', ' ']);
    let mut chars = title.chars();
    let first = chars.next()?;
    let mut cleaned: String = first.to_uppercase().chain(chars).collect();
    if cleaned.chars().count() > TITLE_MAX_CHARS {
        let cut: String = cleaned.chars().take(TITLE_MAX_CHARS).collect();
        let at_word = cut.rfind(' ').map_or(cut.as_str(), |i| &cut[..i]);
        cleaned = format!("{}…", at_word.trim_end_matches([',', ' ']));
    }
    Some(cleaned)
}

/// Byte position of the first whole-word, case-insensitive occurrence of `name` in `sql_lower`.
pub fn word_position(sql_lower: &str, name: &str) -> Option<usize> {
    let needle = name.to_lowercase();
    if needle.is_empty() {
        return None;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = sql_lower.get(from..)?.find(&needle) {
        let start = from + found;
        let end = start + needle.len();
        let before_ok = sql_lower[..start].chars().next_back().is_none_or(|c| !is_word(c));
        let after_ok = sql_lower[end..].chars().next().is_none_or(|c| !is_word(c));
        if before_ok && after_ok {
            return Some(start);
        }
        from = start + needle.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Byte offsets of the keyword phrase `word` (lower case, single spaces) as a whole word outside
/// parentheses, literals, quoted identifiers and comments of `sql_lower` (whitespace already
/// collapsed), read with the project's SQL scanner.
fn top_level_positions(sql_lower: &str, word: &str) -> Vec<usize> {
    let first = word.split(' ').next().unwrap_or(word);
    let mut depth = 0i32;
    let mut found = Vec::new();
    for t in crate::lang::sql::tokens(sql_lower) {
        match (t.kind, t.text(sql_lower)) {
            (Kind::Other, "(") => depth += 1,
            (Kind::Other, ")") => depth -= 1,
            (Kind::Word, w) if depth == 0 && w == first && starts_phrase(sql_lower, t.range.start, word) => {
                found.push(t.range.start)
            }
            _ => {}
        }
    }
    found
}

/// Whether the phrase `word` starts at `at` and ends at a word boundary.
fn starts_phrase(sql_lower: &str, at: usize, word: &str) -> bool {
    sql_lower[at..].starts_with(word)
        && sql_lower[at + word.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

/// The first key of the outermost ORDER BY, lower-cased and unquoted, and whether it is descending.
pub fn order_by_first_key(sql: &str) -> Option<(String, bool)> {
    let lower = collapse(sql);
    let start = *top_level_positions(&lower, "order by").last()? + "order by".len();
    let rest = &lower[start..];
    let mut depth = 0i32;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                end = i;
                break;
            }
            ')' => depth -= 1,
            ',' | ';' if depth == 0 => {
                end = i;
                break;
            }
            _ if depth == 0 && [" limit", " offset", " fetch"].iter().any(|k| rest[i..].starts_with(k)) => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let mut key = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    for suffix in [" nulls first", " nulls last"] {
        if let Some(stripped) = key.strip_suffix(suffix) {
            key = stripped.to_string();
        }
    }
    let descending = key.ends_with(" desc");
    let key = key.trim_end_matches(" desc").trim_end_matches(" asc").trim().replace('"', "");
    (!key.is_empty()).then_some((key, descending))
}

/// Whether `key` (from `order_by_first_key`) orders by the column `name`, whose select-list
/// position is `position` (1-based) when known: by name, qualified name, position, or the very
/// expression the select list aliases to `name`.
pub fn key_names_column(key: &str, sql_lower: &str, name: &str, position: Option<usize>) -> bool {
    let name = name.to_lowercase();
    if key == name || key.rsplit('.').next() == Some(name.as_str()) {
        return true;
    }
    if let (Ok(n), Some(p)) = (key.parse::<usize>(), position) {
        return n == p;
    }
    sql_lower.contains(&format!("{key} as {name}")) || sql_lower.contains(&format!("{key} as \"{name}\""))
}

pub fn has_top_level_limit(sql: &str) -> bool {
    let lower = collapse(sql);
    !top_level_positions(&lower, "limit").is_empty() || !top_level_positions(&lower, "fetch first").is_empty()
}

/// Lower case, with every run of whitespace made one space.
pub fn collapse(sql: &str) -> String {
    sql.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lower-cased aliases of `extract(...)` and `date_part(...)` calls: time parts such as years or
/// months, whatever the alias is called.
pub fn time_part_aliases(sql: &str) -> Vec<String> {
    let lower = sql.to_lowercase();
    let mut aliases = Vec::new();
    for function in ["extract(", "date_part("] {
        let mut from = 0;
        while let Some(found) = lower[from..].find(function) {
            let open = from + found + function.len() - 1;
            from = open + 1;
            if let Some(alias) = alias_after_call(&lower, open) {
                aliases.push(alias);
            }
        }
    }
    aliases
}

/// The `AS alias` (or bare alias) following the call whose '(' is at `open`.
fn alias_after_call(lower: &str, open: usize) -> Option<String> {
    let mut depth = 0i32;
    let mut close = None;
    for (i, c) in lower[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let mut rest = lower[close? + 1..].trim_start();
    // A cast such as ::int keeps the meaning.
    if let Some(after_cast) = rest.strip_prefix("::") {
        let end = after_cast.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(after_cast.len());
        rest = after_cast[end..].trim_start();
    }
    if let Some(after_as) = rest.strip_prefix("as ") {
        rest = after_as.trim_start();
    }
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next().map(str::to_string).filter(|a| !a.is_empty());
    }
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let alias = &rest[..end];
    let keyword = ["from", "as", "and", "or", "then", "else", "end", "when"].contains(&alias);
    (!alias.is_empty() && !keyword).then(|| alias.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(
            clean_title("what are the top 5 customers by revenue? Return names.").as_deref(),
            Some("Top 5 customers by revenue")
        );
        assert_eq!(clean_title("  show me   monthly sales.").as_deref(), Some("Monthly sales"));
        assert_eq!(clean_title("How many orders per day"), Some("How many orders per day".to_string()));
        assert_eq!(clean_title("   ?"), None);
        let long = clean_title(&"word ".repeat(40)).unwrap_or_default();
        assert!(long.chars().count() <= TITLE_MAX_CHARS + 1 && long.ends_with('…'));
    }

    #[test]
    fn order_by() {
        let sql = "SELECT name, count(*) AS n FROM t GROUP BY name ORDER BY count(*) DESC NULLS LAST LIMIT 5";
        assert_eq!(order_by_first_key(sql), Some(("count(*)".to_string(), true)));
        assert!(key_names_column("count(*)", &sql.to_lowercase(), "n", None));
        let windowed = "SELECT a, rank() OVER (ORDER BY b) FROM t ORDER BY t.a";
        assert_eq!(order_by_first_key(windowed), Some(("t.a".to_string(), false)));
        assert!(key_names_column("t.a", "", "a", None));
        assert!(key_names_column("2", "", "b", Some(2)));
        assert_eq!(order_by_first_key("SELECT 1"), None);
        assert!(has_top_level_limit(sql) && !has_top_level_limit("SELECT * FROM (SELECT 1 LIMIT 1) s"));
        assert!(!has_top_level_limit("SELECT credit_limit FROM t"));
        assert_eq!(order_by_first_key("SELECT a FROM t\nORDER\n BY a\nLIMIT 3"), Some(("a".to_string(), false)));
    }

    #[test]
    fn time_parts_and_words() {
        let sql = "SELECT EXTRACT(YEAR FROM d)::int AS y, date_part('month', d) \"Mo\", count(*) FROM t";
        assert_eq!(time_part_aliases(sql), ["y", "mo"]);
        assert_eq!(word_position("select total, sub_total from t", "total"), Some(7));
        assert_eq!(word_position("select sub_total from t", "total"), None);
        assert!(QuestionHints::read("Share of revenue by region").share);
        assert!(QuestionHints::read("price vs. volume").relation);
    }
}
