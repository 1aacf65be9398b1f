//! Removing secrets from texts that reach a user or the log. A gateway can echo the key in many
//! forms: whole, in another case, percent-encoded, JSON-escaped (one or two levels deep), as base64
//! of the Authorization value, or cut ("sk-abc...xyz", a prefix, a fragment). Every secret is
//! turned into short fragments (windows of `FRAGMENT` bytes of each form) that one Aho-Corasick
//! automaton finds in a single pass over the text, its percent/JSON-decoded view and the view
//! decoded twice; each run of matched bytes is replaced. Building is linear in the secrets' size
//! and scrubbing linear in the text's; the decoded views are streamed, never stored.

use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};
use base64::Engine as _;
use std::ops::Range;
use std::sync::OnceLock;

/// A run of a secret at least this long is masked wherever it appears (a cut or partial echo).
pub const FRAGMENT: usize = 12;
/// Secrets shorter than this are not looked for: they would mask ordinary words.
pub const MIN_SECRET: usize = 4;
/// Longest part of one secret that is looked for: the longest Authorization value sqlchat sends.
pub const MAX_SECRET: usize = 8 * 1024;
/// Base64 runs shorter than this are not looked for (too likely to occur by chance).
const MIN_BASE64: usize = 8;
/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";
/// Bytes of decoded text whose origin is remembered: the longest pattern (a fragment) fits.
const RING: usize = 16;
/// Token characters after `sk-` or `Bearer ` at least this long are masked even when unknown.
const MIN_KEY_LIKE: usize = 8;

/// The secrets to remove and the automaton that finds them.
#[derive(Debug)]
pub struct Secrets {
    finder: Finder,
}

#[derive(Debug)]
enum Finder {
    /// No secret is configured: only key-like tokens are masked.
    Nothing,
    Patterns(Box<NFA>),
    /// The automaton could not be built: texts are withheld whole rather than shown unscrubbed.
    Withhold,
}

impl Secrets {
    /// No configured secret.
    pub fn none() -> Secrets {
        Secrets { finder: Finder::Nothing }
    }

    /// The configured secrets: API keys and full Authorization values (`Bearer ...`, `Basic ...`).
    pub fn new<S: AsRef<str>>(values: &[S]) -> Secrets {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for value in values {
            add_patterns(value.as_ref(), &mut patterns);
        }
        if patterns.is_empty() {
            return Secrets::none();
        }
        // Case-insensitive, so one pattern covers every case of a fragment.
        for p in &mut patterns {
            p.make_ascii_lowercase();
        }
        patterns.sort_unstable();
        patterns.dedup();
        let built = NFA::builder()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .prefilter(false)
            .build(&patterns);
        match built {
            Ok(nfa) => Secrets { finder: Finder::Patterns(Box::new(nfa)) },
            Err(_) => Secrets { finder: Finder::Withhold },
        }
    }

    /// An error or log text with every form of every configured secret, and every token that
    /// looks like a key (`sk-...`, `Bearer ...`), replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        self.redact(text, key_like_spans(text))
    }

    /// Data (a model's reply, a statement's error fed back to the model) with every form of every
    /// configured secret replaced: key-like tokens stay, as they may be values such as SKUs.
    pub fn scrub_configured(&self, text: &str) -> String {
        self.redact(text, Vec::new())
    }

    fn redact(&self, text: &str, mut spans: Vec<Range<usize>>) -> String {
        match &self.finder {
            Finder::Nothing => {}
            Finder::Withhold if text.is_empty() => {}
            Finder::Withhold => return "[text withheld: sqlchat could not prepare the scrubbing of secrets]".into(),
            Finder::Patterns(nfa) => {
                let bytes = text.as_bytes();
                let raw = bytes.iter().enumerate().map(|(i, &b)| Unit { byte: b, from: i..i + 1 });
                spans = merge(spans, secret_spans(nfa, raw));
                // Escapes can only hide a secret where an escape character occurs.
                if bytes.iter().any(|&b| b == b'%' || b == b'\\') {
                    let once = Decode::new(bytes.iter().enumerate().map(|(i, &b)| Unit { byte: b, from: i..i + 1 }));
                    spans = merge(spans, secret_spans(nfa, once));
                    let twice = Decode::new(Decode::new(
                        bytes.iter().enumerate().map(|(i, &b)| Unit { byte: b, from: i..i + 1 }),
                    ));
                    spans = merge(spans, secret_spans(nfa, twice));
                }
            }
        }
        replace(text, &spans)
    }
}

/// The patterns of one secret: fragments of its plain forms (the value, and the credential after
/// an Authorization scheme) and of its base64 encodings.
fn add_patterns(value: &str, patterns: &mut Vec<Vec<u8>>) {
    let value = value.trim();
    if value.len() < MIN_SECRET {
        return;
    }
    let value = &value.as_bytes()[..value.len().min(MAX_SECRET)];
    // "Bearer sk-..." / "Basic dXNlcjpwYXNz": the credential is the secret, with or without the
    // scheme before it.
    let credential = match value.iter().position(|b| b.is_ascii_whitespace()) {
        Some(space) if value[space..].trim_ascii().len() >= MIN_SECRET => value[space..].trim_ascii(),
        _ => value,
    };
    add_fragments(credential, MIN_SECRET, patterns);
    // Base64 of the value at each of the three alignments it can have inside a longer encoded
    // text; this covers base64 of "Bearer <key>" and of the credential alone, which are runs of
    // the value's bytes at some alignment.
    for align in 0..3usize {
        let mut input = vec![0u8; align];
        input.extend_from_slice(value);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&input);
        // Characters holding bits of the padding or of whatever follows differ from text to text.
        let first = (8 * align).div_ceil(6);
        let last = 8 * (align + value.len()) / 6;
        if last <= first || last - first < MIN_BASE64 {
            continue;
        }
        let core = &encoded.as_bytes()[first..last];
        add_fragments(core, MIN_BASE64, patterns);
        let url_safe: Vec<u8> = core
            .iter()
            .map(|&b| match b {
                b'+' => b'-',
                b'/' => b'_',
                other => other,
            })
            .collect();
        add_fragments(&url_safe, MIN_BASE64, patterns);
    }
}

/// The form itself when short, else every run of `FRAGMENT` bytes of it.
fn add_fragments(form: &[u8], min: usize, patterns: &mut Vec<Vec<u8>>) {
    if form.len() < min {
        return;
    }
    if form.len() <= FRAGMENT {
        patterns.push(form.to_vec());
    } else {
        patterns.extend(form.windows(FRAGMENT).map(<[u8]>::to_vec));
    }
}

/// One byte of a (possibly decoded) view of the text and the bytes of the text it came from.
#[derive(Debug, Clone)]
struct Unit {
    byte: u8,
    from: Range<usize>,
}

/// Byte ranges of the text that hold a secret, found in one view of it; sorted and disjoint.
fn secret_spans(nfa: &NFA, view: impl Iterator<Item = Unit>) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    let Ok(mut state) = nfa.start_state(Anchored::No) else { return spans };
    let mut origin: [usize; RING] = [0; RING];
    for (at, unit) in view.enumerate() {
        origin[at % RING] = unit.from.start;
        state = nfa.next_state(Anchored::No, state, unit.byte);
        if !(nfa.is_special(state) && nfa.is_match(state)) {
            continue;
        }
        // Every match ending here is a suffix of the longest one.
        let longest =
            (0..nfa.match_len(state)).map(|i| nfa.pattern_len(nfa.match_pattern(state, i))).max().unwrap_or(0);
        if longest == 0 || longest > at + 1 {
            continue;
        }
        let start = origin[(at + 1 - longest) % RING];
        push_span(&mut spans, start..unit.from.end);
    }
    spans
}

/// Adds a span that ends at or after every span already there, merging what it overlaps or
/// touches (amortised constant time).
fn push_span(spans: &mut Vec<Range<usize>>, mut span: Range<usize>) {
    while let Some(last) = spans.last() {
        if last.end < span.start {
            break;
        }
        span = last.start.min(span.start)..last.end.max(span.end);
        spans.pop();
    }
    spans.push(span);
}

/// The union of two sorted lists of disjoint spans, sorted and disjoint.
fn merge(a: Vec<Range<usize>>, b: Vec<Range<usize>>) -> Vec<Range<usize>> {
    if b.is_empty() {
        return a;
    }
    let mut out: Vec<Range<usize>> = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.start <= y.start => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        let Some(span) = next else { break };
        match out.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => out.push(span),
        }
    }
    out
}

/// `text` with each span (widened to character boundaries) replaced by `[redacted]`.
fn replace(text: &str, spans: &[Range<usize>]) -> String {
    if spans.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for span in spans {
        let mut start = span.start.max(copied);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end.min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        if start < copied {
            // Widening reached into the previous replacement: continue it.
            start = copied;
        } else {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
        }
        copied = copied.max(end);
    }
    out.push_str(&text[copied..]);
    out
}

/// Tokens that look like keys whatever is configured: what follows `sk-` or `Bearer ` (any case)
/// when it is at least `MIN_KEY_LIKE` token characters long.
fn key_like_spans(text: &str) -> Vec<Range<usize>> {
    static MARKERS: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
    let markers = MARKERS.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(["sk-", "bearer "])
            .expect("two fixed patterns")
    });
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut resume = 0;
    for m in markers.find_iter(text) {
        if m.start() < resume {
            continue;
        }
        let start = m.end();
        let token = &bytes[start..];
        let mut len = token.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)).count();
        // A full stop after a key ends the sentence.
        while len > 0 && token[len - 1] == b'.' {
            len -= 1;
        }
        if len >= MIN_KEY_LIKE {
            spans.push(start..start + len);
        }
        resume = start + len;
    }
    spans
}

/// One level of percent-decoding and JSON-unescaping over a view, streamed: `%2D` and `\u002d`
/// become `-`, `\/` becomes `/`, `\"` becomes `"`; anything else passes through. Each output
/// byte keeps the range of the original text its escape covered.
struct Decode<I: Iterator<Item = Unit>> {
    input: I,
    /// Units read ahead (an escape is at most 12 units: a surrogate pair).
    ahead: std::collections::VecDeque<Unit>,
    /// Decoded bytes not yet handed out (a character is at most 4).
    out: std::collections::VecDeque<Unit>,
}

impl<I: Iterator<Item = Unit>> Decode<I> {
    fn new(input: I) -> Self {
        Decode { input, ahead: Default::default(), out: Default::default() }
    }

    /// Fills the look-ahead to `n` units when the input has them; true when it has.
    fn fill(&mut self, n: usize) -> bool {
        while self.ahead.len() < n {
            match self.input.next() {
                Some(u) => self.ahead.push_back(u),
                None => return false,
            }
        }
        true
    }

    fn hex_at(&self, at: usize, digits: usize) -> Option<u32> {
        (at..at + digits).try_fold(0u32, |acc, i| Some(acc * 16 + (self.ahead[i].byte as char).to_digit(16)?))
    }

    /// Consumes `n` units and emits `bytes`, each with the range those units covered.
    fn emit(&mut self, n: usize, bytes: &[u8]) {
        let start = self.ahead[0].from.start;
        let end = self.ahead[n - 1].from.end;
        self.ahead.drain(..n);
        self.out.extend(bytes.iter().map(|&byte| Unit { byte, from: start..end }));
    }

    /// A `\uXXXX` escape (a surrogate pair when it is one) at the front: the character and the
    /// units it spans.
    fn unicode_escape(&mut self) -> Option<(char, usize)> {
        if !self.fill(6) {
            return None;
        }
        let high = self.hex_at(2, 4)?;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high).map(|c| (c, 6));
        }
        if !self.fill(12) || self.ahead[6].byte != b'\\' || self.ahead[7].byte != b'u' {
            return None;
        }
        let low = self.hex_at(8, 4)?;
        if !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)).map(|c| (c, 12))
    }

    fn step(&mut self) -> bool {
        if !self.fill(1) {
            return false;
        }
        let first = self.ahead[0].byte;
        match first {
            b'%' if self.fill(3) => {
                if let Some(v) = self.hex_at(1, 2) {
                    self.emit(3, &[v as u8]);
                    return true;
                }
            }
            b'\\' if self.fill(2) => {
                let simple = match self.ahead[1].byte {
                    b'"' => Some(b'"'),
                    b'\\' => Some(b'\\'),
                    b'/' => Some(b'/'),
                    b'n' => Some(b'\n'),
                    b't' => Some(b'\t'),
                    b'r' => Some(b'\r'),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0C),
                    _ => None,
                };
                if let Some(b) = simple {
                    self.emit(2, &[b]);
                    return true;
                }
                if self.ahead[1].byte == b'u' {
                    if let Some((c, n)) = self.unicode_escape() {
                        let mut buf = [0u8; 4];
                        let encoded = c.encode_utf8(&mut buf).as_bytes().to_vec();
                        self.emit(n, &encoded);
                        return true;
                    }
                }
            }
            _ => {}
        }
        let unit = self.ahead.pop_front().expect("filled");
        self.out.push_back(unit);
        true
    }
}

impl<I: Iterator<Item = Unit>> Iterator for Decode<I> {
    type Item = Unit;

    fn next(&mut self) -> Option<Unit> {
        loop {
            if let Some(u) = self.out.pop_front() {
                return Some(u);
            }
            if !self.step() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
