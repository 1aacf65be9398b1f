//! Questions as teaching compares them: the key under which a taught question is asked again
//! (verified answers), and the stemmed content words that make two questions alike (worked
//! examples, definitions).

use crate::lang::text::each_identifier_word;
use crate::lang::words::{is_non_content, is_stop_word};
use crate::lang::{stem, tokenize, Token};

/// The key of a question: its words lowercased, without punctuation or spacing, content words in
/// their order and stop words as a sorted bag. Numbers, dates and quoted literals are words of
/// their own, so "top 5" and "top 10" (or "2024" and "2025") never share a key.
pub fn key(question: &str) -> String {
    let mut content: Vec<String> = Vec::new();
    let mut stops: Vec<String> = Vec::new();
    let mut push = |word: String| {
        if is_stop_word(&word) {
            stops.push(word);
        } else {
            content.push(word);
        }
    };
    for token in tokenize(question) {
        match token {
            Token::Word(w) => push(w),
            Token::Num(v) => push(number_text(v)),
            Token::Date(d) => push(d),
            Token::Sym(s) => push(s),
            // A quoted literal reads as its words: quotes are punctuation.
            Token::Quoted(q) => {
                for inner in tokenize(&q) {
                    match inner {
                        Token::Word(w) => push(w),
                        Token::Num(v) => push(number_text(v)),
                        Token::Date(d) | Token::Sym(d) | Token::Quoted(d) => push(d.to_lowercase()),
                        Token::Break => {}
                    }
                }
            }
            Token::Break => {}
        }
    }
    stops.sort_unstable();
    format!("{}|{}", content.join(" "), stops.join(" "))
}

/// `5`, `4.5`, `1000000`: one spelling per value.
fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The distinct stems of a text's content words (two characters or more, not numbers), in order.
pub fn content_stems(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    each_identifier_word(&text.to_lowercase(), |w| {
        if w.chars().nth(1).is_some() && !w.chars().all(|c| c.is_numeric()) && !is_non_content(w) {
            let s = stem(w);
            if !out.contains(&s) {
                out.push(s);
            }
        }
    });
    out
}

/// The stems of a text's words in order, stop words left out (how definitions' terms are found).
pub fn stem_sequence(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    each_identifier_word(&text.to_lowercase(), |w| {
        if !is_stop_word(w) {
            out.push(stem(w));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_punctuation_spacing_and_stop_word_order() {
        let k = key("What are the top 5 customers by revenue?");
        assert_eq!(k, key("what   are the TOP 5 customers by revenue"));
        assert_eq!(k, key("What are the top 5 customers, by revenue!!"));
        assert_eq!(k, key("the top 5 customers are what by revenue"));
        assert_eq!(key("orders in 'New York'"), key("Orders in new york?"));
    }

    #[test]
    fn numbers_and_literals_make_keys_differ() {
        assert_ne!(key("top 5 customers"), key("top 10 customers"));
        assert_ne!(key("orders in 2024"), key("orders in 2025"));
        assert_ne!(key("orders in 'Oslo'"), key("orders in 'Bergen'"));
        assert_ne!(key("customers who ordered"), key("customers who never ordered"));
        assert_ne!(key("top customers"), key("top customer"));
        assert_eq!(key("top 5.0 customers"), key("top 5 customers"));
    }

    #[test]
    fn stems() {
        assert_eq!(content_stems("How many Cities have 3 restaurants?"), ["citi", "restaur"]);
        assert_eq!(stem_sequence("cost of the goods sold"), ["cost", "good", "sold"]);
    }
}
