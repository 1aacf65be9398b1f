//! The part of a model's reply meant for the reader, found in one forward pass that lets the host
//! act on a cancel while it runs, and cut to a size every later pass can afford.

/// Most bytes of a reply's visible text that any later pass reads: about 16k tokens, more than a
/// model's whole output allowance at most gateways. A statement or an answer is a few kilobytes; a
/// reply that goes on past this is cut rather than read whole.
pub const MAX_VISIBLE_BYTES: usize = 64 * 1024;

/// A long pass over model text calls the host's interrupt check at least this often (bytes).
const CHECK_EVERY: usize = 64 * 1024;

/// Blocks of reasoning some models write before (or instead of) their reply.
const REASONING_TAGS: [&str; 3] = ["think", "thinking", "reasoning"];

/// Calls the interrupt check each time a pass has moved `CHECK_EVERY` bytes further.
struct Pacer<'a> {
    check: &'a mut dyn FnMut(),
    next: usize,
}

impl<'a> Pacer<'a> {
    fn new(check: &'a mut dyn FnMut()) -> Self {
        Pacer { check, next: CHECK_EVERY }
    }

    fn at(&mut self, offset: usize) {
        if offset >= self.next {
            (self.check)();
            self.next = offset + CHECK_EVERY;
        }
    }
}

/// The reply without `<think>`, `<thinking>` and `<reasoning>` blocks (any case), at most
/// `MAX_VISIBLE_BYTES` long. An unclosed block runs to the end; a closing tag with no opening one
/// ends reasoning the reply started with (some servers put the opening tag in the prompt).
/// `check_interrupts` is called every 64 KiB of the pass; a check that unwinds ends it.
pub fn visible_text(reply: &str, check_interrupts: &mut dyn FnMut()) -> String {
    let mut pacer = Pacer::new(check_interrupts);
    let b = reply.as_bytes();
    let mut out = String::new();
    // reply[copied..] is not handled yet; `inside` names the reasoning block being skipped.
    let mut copied = 0;
    let mut inside: Option<&str> = None;
    let mut at = 0;
    while at < reply.len() {
        pacer.at(at);
        if inside.is_none() && out.len() + at.saturating_sub(copied) >= MAX_VISIBLE_BYTES {
            break; // what follows would not be kept
        }
        let mut end = at + prefix(&reply[at..], CHECK_EVERY).len().max(1);
        for (i, _) in reply[at..end].match_indices('<') {
            let lt = at + i;
            let Some(tag) = tag_at(b, lt) else { continue };
            match inside {
                None if !tag.closing => {
                    push_bounded(&mut out, &reply[copied..lt]);
                    inside = Some(tag.name);
                }
                None => out.clear(),
                Some(name) if tag.closing && name == tag.name => inside = None,
                Some(_) => continue,
            }
            copied = lt + tag.len();
        }
        // A tag that starts before `end` was read whole by tag_at, however long.
        while !reply.is_char_boundary(end) {
            end += 1;
        }
        at = end;
    }
    if inside.is_none() {
        push_bounded(&mut out, &reply[copied..]);
    }
    out
}

/// A reasoning tag: `<think>`, `</think>`...
#[derive(Clone, Copy)]
struct Tag {
    name: &'static str,
    closing: bool,
}

impl Tag {
    fn len(&self) -> usize {
        self.name.len() + 2 + usize::from(self.closing)
    }
}

/// The reasoning tag that starts at `lt` (a `<`), if any.
fn tag_at(b: &[u8], lt: usize) -> Option<Tag> {
    let closing = b.get(lt + 1) == Some(&b'/');
    let name_at = lt + 1 + usize::from(closing);
    // Most `<` in text start no tag: one byte tells.
    if !matches!(b.get(name_at), Some(b't' | b'T' | b'r' | b'R')) {
        return None;
    }
    let name = REASONING_TAGS.into_iter().find(|name| {
        let end = name_at + name.len();
        b.get(name_at..end).is_some_and(|s| s.eq_ignore_ascii_case(name.as_bytes())) && b.get(end) == Some(&b'>')
    })?;
    Some(Tag { name, closing })
}

/// Appends `text` without letting `out` grow past `MAX_VISIBLE_BYTES` (cut at a char boundary).
fn push_bounded(out: &mut String, text: &str) {
    let room = MAX_VISIBLE_BYTES.saturating_sub(out.len());
    out.push_str(prefix(text, room));
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(reply: &str) -> String {
        visible_text(reply, &mut || {})
    }

    #[test]
    fn reasoning_blocks_are_dropped() {
        assert_eq!(visible("<think>maybe SELECT 2</think>\nSELECT 1"), "\nSELECT 1");
        assert_eq!(visible("a<THINKING>x</Thinking>b<reasoning>y</REASONING>c"), "abc");
        assert_eq!(visible("a<think>x</thinking>y</think>b"), "ab");
        assert_eq!(visible("a <thinker> b"), "a <thinker> b");
    }

    #[test]
    fn unclosed_and_unopened_blocks() {
        assert_eq!(visible("SELECT 1 <think>and then"), "SELECT 1 ");
        assert_eq!(visible("I should count rows.</think>SELECT count(*) FROM t"), "SELECT count(*) FROM t");
        assert_eq!(visible("<think></think>"), "");
    }

    #[test]
    fn tags_across_the_pass_chunks() {
        for pad in CHECK_EVERY - 8..CHECK_EVERY + 2 {
            for reply in [
                format!("<think>{}</think>SELECT 1", "x".repeat(pad)),
                format!("<think>{}é</think>SELECT 1", "x".repeat(pad)),
                format!("<think>{}</think><reasoning>a</reasoning>SELECT 1", "é".repeat(pad / 2)),
            ] {
                assert!(visible(&reply) == "SELECT 1", "{pad}");
            }
        }
    }

    #[test]
    fn long_replies_are_cut_on_a_char_boundary() {
        let reply = "é".repeat(MAX_VISIBLE_BYTES);
        let out = visible(&reply);
        assert!(out.len() <= MAX_VISIBLE_BYTES && out.len() >= MAX_VISIBLE_BYTES - 1);
        assert_eq!(prefix("aé", 2), "a");
    }

    #[test]
    fn the_check_runs_while_the_pass_moves() {
        // Reasoning is read to its end however long; visible text only as far as it is kept.
        let reply = format!("<think>{}</think>{}", "<".repeat(2 << 20), "x".repeat(2 << 20));
        let mut checks = 0;
        assert_eq!(visible_text(&reply, &mut || checks += 1).len(), MAX_VISIBLE_BYTES);
        assert!((30..=34).contains(&checks), "{checks} checks over 2 MiB of reasoning");
    }
}
