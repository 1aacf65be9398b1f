//! Short follow-ups in a session ("and in 2024?", "what about London?") read against the
//! previous question: the follow-up's time phrase replaces the previous one's, and anything else
//! it says is added to the previous question.
//!
//! A follow-up is answered only when the offline engine reads the previous turn the way that turn
//! was answered (its question, itself resolved the same way, plans to the SQL the turn ran):
//! then what the follow-up refers to is known. Otherwise (a turn the model answered, a turn the
//! engine declined, a session whose data moved on) the reference is left to the model.

use super::{plan, Decision, Probe};
use crate::lang::View;

/// Words that open a follow-up.
const OPENERS: &[&[&str]] =
    &[&["and", "what", "about"], &["what", "about"], &["how", "about"], &["same", "for"], &["and", "for"], &["and"]];
/// Longest follow-up read this way, in words after the opener.
const MAX_WORDS: usize = 6;

/// One earlier turn of a session: its question and the SQL it ran, if any.
#[derive(Debug, Clone, Copy)]
pub struct Earlier<'a> {
    pub question: &'a str,
    pub sql: Option<&'a str>,
}

/// Whether a question opens like a short follow-up ("and in 2024?", "what about London?").
pub fn is_follow_up(question: &str) -> bool {
    follow_up("", question).is_some()
}

/// The plan for a follow-up `question` after the `earlier` turns of its session (oldest first),
/// when the last of them reads offline as it was answered; None otherwise.
pub fn plan_follow_up(view: &View, earlier: &[Earlier], question: &str, probe: &mut dyn Probe) -> Option<Decision> {
    let (last, before) = earlier.split_last()?;
    let previous_sql = last.sql?;
    // Each earlier question as it stood, follow-ups resolved against the one before.
    let previous =
        before.iter().chain(std::iter::once(last)).fold(None::<String>, |standing, turn| match standing {
            Some(s) => Some(follow_up(&s, turn.question).unwrap_or_else(|| turn.question.to_string())),
            None => Some(turn.question.to_string()),
        })?;
    let merged = follow_up(&previous, question)?;
    let Decision::Answer(previous_plan) = plan(view, &previous, probe) else { return None };
    if previous_plan.sql != previous_sql {
        return None;
    }
    match plan(view, &merged, probe) {
        answer @ Decision::Answer(_) => Some(answer),
        Decision::Decline(_) => None,
    }
}

/// The previous question rewritten with what a follow-up adds, or None when the question does not
/// read as a follow-up.
pub fn follow_up(previous: &str, question: &str) -> Option<String> {
    let words: Vec<String> = question
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '\'').to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let opener = OPENERS.iter().find(|o| lower.len() > o.len() && o.iter().zip(&lower).all(|(a, b)| a == b))?;
    let rest = &words[opener.len()..];
    if rest.len() > MAX_WORDS {
        return None;
    }
    let rest_lower = &lower[opener.len()..];
    let previous_words: Vec<&str> = previous.trim_end_matches(['?', '.', '!', ' ']).split_whitespace().collect();
    let kept: Vec<&str> = if time_spans(rest_lower).is_empty() {
        previous_words
    } else {
        let lower_prev: Vec<String> = previous_words.iter().map(|w| w.to_lowercase()).collect();
        let spans = time_spans(&lower_prev);
        previous_words
            .iter()
            .enumerate()
            .filter(|(i, _)| !spans.iter().any(|(s, e)| s <= i && i < e))
            .map(|(_, w)| *w)
            .collect()
    };
    let mut merged = kept.join(" ");
    merged.push(' ');
    merged.push_str(&rest.join(" "));
    Some(merged)
}

/// Spans of time phrases in lowercase words: "in 2024", "in the year 2024", "in the last 3
/// months", "last year", "this month".
fn time_spans(words: &[String]) -> Vec<(usize, usize)> {
    let bare = |i: usize| words.get(i).map(|w| w.trim_matches(|c: char| !c.is_alphanumeric())).unwrap_or("");
    let is_year = |i: usize| bare(i).len() == 4 && bare(i).chars().all(|c| c.is_ascii_digit());
    let is_unit = |i: usize| crate::lang::words::time_unit(bare(i)).is_some();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let start = i;
        let mut j = i;
        if matches!(bare(j), "in" | "during" | "for" | "since" | "from") {
            j += 1;
        }
        if bare(j) == "the" {
            j += 1;
        }
        let end = if bare(j) == "year" && is_year(j + 1) {
            Some(j + 2)
        } else if is_year(j) {
            Some(j + 1)
        } else if matches!(bare(j), "last" | "past" | "previous" | "this") {
            let n = usize::from(bare(j + 1).chars().all(|c| c.is_ascii_digit()) && !bare(j + 1).is_empty());
            is_unit(j + 1 + n).then_some(j + 2 + n)
        } else {
            None
        };
        match end {
            Some(e) => {
                spans.push((start, e));
                i = e;
            }
            None => i += 1,
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_phrases_are_replaced() {
        assert_eq!(
            follow_up("What was the revenue per month in 2025?", "and in 2024?").as_deref(),
            Some("What was the revenue per month in 2024")
        );
        assert_eq!(
            follow_up("How many orders were placed in the last 3 months?", "what about last year?").as_deref(),
            Some("How many orders were placed last year")
        );
    }

    #[test]
    fn other_words_are_added() {
        assert_eq!(
            follow_up("Which city has the most customers?", "and in Germany?").as_deref(),
            Some("Which city has the most customers in Germany")
        );
    }

    #[test]
    fn questions_that_stand_alone_are_not_follow_ups() {
        assert_eq!(follow_up("How many orders?", "How many customers are there?"), None);
        assert_eq!(follow_up("How many orders?", "and"), None);
        assert_eq!(
            follow_up("How many orders?", "and what is the average rating of reviews by product category"),
            None
        );
    }
}
