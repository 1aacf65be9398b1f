//! Refusals in plain words: a reply without SQL is a refusal only when it says plainly that the
//! question cannot be answered from the schema, its tables or its data. Anything else written
//! instead of SQL (an answer made up without running anything, an explanation, small talk) is not,
//! and is never shown to the user as if it were a finding.

use super::visible::prefix;

/// Refusal reasons are shown to users; a model that rambles is cut here.
pub(super) const MAX_REASON_CHARS: usize = 400;
/// A refusal says so early: only this much of a reply is read for one.
const WINDOW_BYTES: usize = 4096;
/// An inability ("cannot") must reach its verb ("answer") within this many words...
const VERB_REACH: usize = 6;
/// ...and a word for the schema or its data must be this close to the inability or absence.
const NOUN_REACH: usize = 6;

/// What the question would need from the schema.
const DATA_NOUNS: &[&str] = &[
    "schema",
    "schemas",
    "table",
    "tables",
    "database",
    "databases",
    "dataset",
    "datasets",
    "data",
    "column",
    "columns",
    "field",
    "fields",
    "information",
];
/// Words that make an inability about answering (as opposed to "cannot be sure", "cannot stress").
const ANSWER_VERBS: &[&str] = &[
    "answer",
    "answered",
    "answering",
    "determine",
    "determined",
    "know",
    "known",
    "tell",
    "provide",
    "find",
    "found",
    "compute",
    "computed",
    "calculate",
    "calculated",
    "generate",
    "generated",
    "write",
    "written",
    "create",
    "retrieve",
    "retrieved",
    "identify",
    "identified",
    "derive",
    "derived",
    "obtain",
    "obtained",
    "infer",
    "inferred",
    "give",
    "say",
    "produce",
    "construct",
];
/// Verbs that, after `not`, say the data is missing.
const PRESENCE_VERBS: &[&str] = &[
    "contain",
    "contains",
    "have",
    "has",
    "include",
    "includes",
    "included",
    "store",
    "stores",
    "stored",
    "hold",
    "holds",
    "record",
    "records",
    "recorded",
    "track",
    "tracks",
    "tracked",
    "exist",
    "exists",
    "available",
    "present",
    "related",
    "relevant",
    "provide",
    "provides",
    "provided",
    "mention",
    "mentions",
    "mentioned",
    "cover",
    "covers",
    "covered",
    "capture",
    "captures",
    "captured",
    "appear",
    "appears",
];
/// A sentence about running things or reaching the database is about the model's situation, not
/// about what the schema holds: "I cannot run queries on your database".
const SITUATION_WORDS: &[&str] =
    &["access", "run", "running", "execute", "executing", "executed", "connect", "connected", "connection"];

/// The sentences of the reply that refuse the question plainly, joined into one compact reason.
pub(super) fn plain_refusal(text: &str) -> Option<String> {
    let text = prefix(text, WINDOW_BYTES);
    let refusing: Vec<&str> = sentences(text).filter(|s| refuses(s)).collect();
    (!refusing.is_empty()).then(|| compact_reason(&refusing.join(" ")))
}

/// Sentences end at `.`, `!` or `?` followed by whitespace (not in `3.5` or `orders.total`), and at
/// line breaks.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut start = 0;
    let mut cuts = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        let ends = match c {
            b'\n' => true,
            b'.' | b'!' | b'?' => b.get(i + 1).is_none_or(u8::is_ascii_whitespace),
            _ => false,
        };
        if ends {
            cuts.push(&text[start..=i]);
            start = i + 1;
        }
    }
    cuts.push(&text[start..]);
    cuts.into_iter().map(str::trim).filter(|s| !s.is_empty())
}

/// True when the sentence says the schema cannot answer: an inability to answer or an absence of
/// data, with a word for the schema or its data close to it. Quoted text (the question echoed, a
/// value) is not the model's own claim and is left out; "tickers that do not have any prices" in
/// a question is a condition on data, not a refusal, and is too far from any schema word.
fn refuses(sentence: &str) -> bool {
    let words = words(&unquoted(sentence));
    let has = |set: &[&str]| words.iter().any(|w| set.contains(&w.as_str()));
    if !has(DATA_NOUNS) || has(SITUATION_WORDS) {
        return false;
    }
    let at = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let noun_near = |from: usize, to: usize| {
        (from.saturating_sub(NOUN_REACH)..=to + NOUN_REACH).any(|j| DATA_NOUNS.contains(&at(j)))
    };
    (0..words.len()).any(|i| {
        let within = |set: &[&str], reach: usize| (i + 1..=i + reach).find(|&j| set.contains(&at(j)));
        let cue_end = match (at(i), at(i + 1)) {
            ("unanswerable" | "impossible", _) | ("none" | "nothing" | "lack" | "lacks", _) => Some(i),
            ("not", "answerable" | "possible") => Some(i + 1),
            ("missing", "from") => Some(i + 1),
            ("is" | "are" | "was" | "were", "missing") => Some(i + 1),
            ("cannot" | "unable", _) | ("could" | "not" | "no", "not" | "able" | "way") => {
                within(ANSWER_VERBS, VERB_REACH)
            }
            ("has" | "have" | "had" | "contains" | "is" | "are", "no") => Some(i + 1),
            ("no", "such") => Some(i + 1),
            ("no", _) => within(DATA_NOUNS, 3),
            ("not", _) => within(PRESENCE_VERBS, 2),
            _ => None,
        };
        cue_end.is_some_and(|end| noun_near(i, end))
    })
}

/// The sentence without what it quotes in double quotes.
fn unquoted(sentence: &str) -> String {
    let mut out = String::with_capacity(sentence.len());
    let mut closing = None;
    for c in sentence.chars() {
        match (closing, c) {
            (None, '"') => closing = Some('"'),
            (None, '“') => closing = Some('”'),
            (Some(close), c) if c == close => {
                closing = None;
                out.push(' ');
            }
            (None, c) => out.push(c),
            (Some(_), _) => {}
        }
    }
    out
}

/// Lower-case words with contractions spelled out: "can't" gives "cannot", "doesn't" "does not".
fn words(sentence: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let normalized = sentence.to_lowercase().replace(['’', '‘'], "'");
    for raw in normalized.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let raw = raw.trim_matches('\'');
        match raw {
            "" => {}
            "can't" | "cannot" => out.push("cannot".into()),
            "won't" => out.extend(["will".into(), "not".into()]),
            _ => match raw.strip_suffix("n't") {
                Some(stem) => out.extend([stem.to_string(), "not".into()]),
                None if raw == "not" && out.last().is_some_and(|w| w == "can") => {
                    out.pop();
                    out.push("cannot".into());
                }
                None => out.push(raw.to_string()),
            },
        }
    }
    out
}

/// One line of plain text: no fences or bold markers, whitespace collapsed, at most
/// `MAX_REASON_CHARS` characters. Reads no more of `text` than it keeps.
pub(super) fn compact_reason(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let lines = text.lines().filter(|l| !l.trim_start().starts_with("```") && !l.trim_start().starts_with("~~~"));
    for word in lines.flat_map(str::split_whitespace) {
        let word = word.replace("**", "");
        if word.is_empty() {
            continue;
        }
        let len = word.chars().count() + usize::from(!out.is_empty());
        if chars + len > MAX_REASON_CHARS {
            out.push('…');
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word);
        chars += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_refusals() {
        for reply in [
            "I cannot answer this from the schema.",
            "The database does not contain information about art.",
            "Sorry, the provided tables have nothing about dark matter.",
            "I'm sorry, but this question is not related to the data.",
            "This question cannot be answered with the available tables because there is no population column.",
            "Unfortunately, there is no information about national animals in this database.",
            "With this schema, there is no way to know the weather.",
            "Update: the data has no prices.",
            "It is impossible to tell from these tables.",
            "None of the tables holds salaries.",
            "The schema doesn’t include any weather data.",
            "There is no such table.",
        ] {
            assert_eq!(plain_refusal(reply).as_deref(), Some(reply), "{reply}");
        }
    }

    #[test]
    fn prose_that_is_not_a_refusal() {
        for reply in [
            "Sure! The number of orders can be found by counting the rows of the orders table.",
            "There are 42 orders in the database.",
            "Sure, no problem! The orders table has 42 rows.",
            "Note that the data is not sorted.",
            "I don't have access to your database, so I can't tell you the number of orders.",
            "I cannot run queries on the database, but the answer is probably 3.",
            "I don't know the exact number, but you can count the rows in the orders table.",
            "I cannot answer this question.",
            "Select a different question, please; the tables hold only orders.",
        ] {
            assert_eq!(plain_refusal(reply), None, "{reply}");
        }
    }

    #[test]
    fn only_the_refusing_sentences_are_the_reason() {
        let reply = "The total is 42.\nHowever, the database does not store exact totals. Hope this helps!";
        assert_eq!(plain_refusal(reply).as_deref(), Some("However, the database does not store exact totals."));
    }

    #[test]
    fn reasons_are_compact_and_bounded() {
        assert_eq!(compact_reason("**Sorry**,\n\nno   table  holds it."), "Sorry, no table holds it.");
        assert_eq!(compact_reason("a\n```sql\nb\n```\nc"), "a b c");
        let long = compact_reason(&"word ".repeat(10_000));
        assert!(long.chars().count() <= MAX_REASON_CHARS + 1 && long.ends_with('…'));
    }
}
