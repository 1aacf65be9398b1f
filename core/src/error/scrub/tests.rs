use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const KEY: &str = "sk-proj-Zq8xW3vK9mT2rB7nL4cY6dH1";

fn secrets() -> Secrets {
    Secrets::new(&[KEY])
}

/// Fails when any run of 8 characters of `secret` (any case) is left in `text`.
fn assert_clean(text: &str, secret: &str) {
    let lower = text.to_ascii_lowercase();
    let secret = secret.to_ascii_lowercase();
    for w in secret.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!lower.contains(w), "{w:?} left in {text:?}");
    }
}

fn percent_all(s: &str, lower_hex: bool) -> String {
    s.bytes().map(|b| if lower_hex { format!("%{b:02x}") } else { format!("%{b:02X}") }).collect()
}

fn json_unicode_all(s: &str) -> String {
    s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
}

#[test]
fn exact_and_any_case() {
    let s = secrets();
    for text in [
        format!("invalid key {KEY}."),
        format!("invalid key {}", KEY.to_uppercase()),
        format!("invalid key {}", KEY.to_lowercase()),
        format!("{KEY}{KEY}"),
    ] {
        let out = s.scrub(&text);
        assert_clean(&out, KEY);
        assert!(out.contains(REDACTED), "{out}");
    }
    assert_eq!(s.scrub(&format!("key {KEY}.")), "key [redacted].");
}

#[test]
fn percent_encoded() {
    let s = secrets();
    for text in [
        format!("GET /v1?key={}", percent_all(KEY, false)),
        format!("GET /v1?key={}", percent_all(KEY, true)),
        format!("key={}", KEY.replace('-', "%2D")),
        format!("key={}", KEY.replace('-', "%2d")),
        // Encoded twice.
        format!("key={}", KEY.replace('-', "%252D")),
    ] {
        let out = s.scrub(&text);
        assert_clean(&out, KEY);
        assert!(out.starts_with("GET /v1?key=[redacted]") || out == "key=[redacted]", "{out}");
    }
}

#[test]
fn json_escaped() {
    let s = secrets();
    let key_with_slash = "ab/cd\"ef\\gh/ij-kl/mn";
    let with_slash = Secrets::new(&[key_with_slash]);
    for (secrets, key, text) in [
        (&s, KEY, format!(r#"{{"error":"bad key {}"}}"#, json_unicode_all(KEY))),
        (&s, KEY, format!(r#"{{"error":"bad key {}"}}"#, KEY.replace('-', "\\u002D"))),
        // JSON inside a JSON string: escaped twice.
        (&s, KEY, format!(r#"{{"body":"{{\"key\":\"{}\"}}"}}"#, KEY.replace('-', "\\\\u002d"))),
        (&with_slash, key_with_slash, serde_json::to_string(&serde_json::json!({"key": key_with_slash})).unwrap()),
        (&with_slash, key_with_slash, format!("\"{}\"", key_with_slash.replace('/', "\\/").replace('"', "\\\""))),
    ] {
        let out = secrets.scrub(&text);
        assert_clean(&out, key);
        assert!(out.contains(REDACTED), "{out}");
    }
}

#[test]
fn base64_of_the_authorization_value() {
    let s = secrets();
    let bearer = format!("Bearer {KEY}");
    for text in [
        // The Authorization value as a gateway might log it.
        format!("authorization (base64): {}", STANDARD.encode(&bearer)),
        format!("key: {}", STANDARD.encode(KEY)),
        format!("key: {}", URL_SAFE_NO_PAD.encode(KEY)),
        // Inside a longer encoded text, at each alignment.
        format!("headers: {}", STANDARD.encode(format!("{{\"authorization\": \"{bearer}\"}}"))),
        format!("headers: {}", STANDARD.encode(format!("x{bearer}"))),
        format!("headers: {}", STANDARD.encode(format!("xy{bearer}"))),
    ] {
        let out = s.scrub(&text);
        assert!(out.contains(REDACTED), "{out}");
        // What is left of the encoding no longer decodes to anything of the key.
        for word in out.split(|c: char| c.is_whitespace() || c == '[' || c == ']') {
            if let Ok(decoded) = STANDARD.decode(word.trim_end_matches('=')) {
                assert_clean(&String::from_utf8_lossy(&decoded), KEY);
            }
        }
        let encoded_key = STANDARD.encode(KEY);
        assert!(!out.contains(&encoded_key[4..20]), "{out}");
    }
}

#[test]
fn an_authorization_header_and_its_credential() {
    let basic = "Basic dXNlcjpjb3JyZWN0IGhvcnNlIGJhdHRlcnk=";
    let s = Secrets::new(&[basic]);
    let out = s.scrub("sent dXNlcjpjb3JyZWN0IGhvcnNlIGJhdHRlcnk= to the gateway");
    assert_eq!(out, "sent [redacted] to the gateway");
    let s = Secrets::new(&["Token shorty9"]);
    assert_eq!(s.scrub("got shorty9 back"), "got [redacted] back");
}

#[test]
fn partial_echoes() {
    let s = secrets();
    // A prefix, a suffix and a middle run of at least FRAGMENT characters.
    let prefix = &KEY[..14];
    let suffix = &KEY[KEY.len() - 13..];
    let middle = &KEY[6..24];
    for part in [prefix, suffix, middle] {
        let out = s.scrub(&format!("the key {part}... is invalid"));
        assert!(!out.contains(part), "{out}");
        assert!(out.contains("[redacted]"), "{out}");
    }
    assert_eq!(s.scrub(&format!("key {prefix} is cut")), "key [redacted] is cut");
    // A key cut where a gateway truncated its message.
    let cut = format!("{}{}", "m".repeat(40), &KEY[..20]);
    assert!(!s.scrub(&cut).contains(&KEY[..12]));
    // Gateways' own masking ("sk-abc...xyz") is masked too, even for an unknown key.
    assert_eq!(Secrets::none().scrub("Incorrect key sk-proj-...dH1 given"), "Incorrect key sk-[redacted] given");
    // Runs shorter than a fragment are ordinary text.
    assert_eq!(s.scrub("proj-Zq8x"), "proj-Zq8x");
}

#[test]
fn key_like_tokens_without_configured_secrets() {
    let none = Secrets::none();
    assert_eq!(none.scrub("Authorization: Bearer abc.def.ghi.jkl"), "Authorization: Bearer [redacted]");
    assert_eq!(none.scrub("authorization: bearer abcdefghij"), "authorization: bearer [redacted]");
    assert_eq!(none.scrub("key SK-ABCDEFGHIJKL"), "key SK-[redacted]");
    assert_eq!(none.scrub("task-list and sk-short"), "task-list and sk-short");
    assert_eq!(none.scrub("plain text"), "plain text");
}

#[test]
fn ordinary_text_is_left_alone() {
    let s = secrets();
    for text in [
        "SELECT count(*) FROM orders WHERE note LIKE '%50%'",
        r#"{"answer": "There are 3 orders.\n", "path": "a\/b", "u": "\u00e9"}"#,
        "100% of %ZZ and a lone \\ and \\u12",
        "héllo wörld ✓",
        "",
    ] {
        assert_eq!(s.scrub(text), text);
    }
}

#[test]
fn non_ascii_keys_and_texts() {
    let key = "clé-secrète-ünïcode-✓✓";
    let s = Secrets::new(&[key]);
    let out = s.scrub(&format!("→ {key} ←"));
    assert_eq!(out, "→ [redacted] ←");
    let out = s.scrub(&format!("→ {} ←", json_unicode_all(key)));
    assert_eq!(out, "→ [redacted] ←");
    // A fragment that starts inside a character ('©' ends in the byte 'é' ends in) is widened
    // to whole characters.
    assert_eq!(s.scrub(&format!("x©{}y", &key[4..])), "x[redacted]y");
}

#[test]
fn short_and_empty_secrets_are_ignored() {
    let s = Secrets::new(&["", "  ", "abc"]);
    assert_eq!(s.scrub("abc abc"), "abc abc");
    let s = Secrets::new(&["abcd"]);
    assert_eq!(s.scrub("xabcdx ABCD"), "x[redacted]x [redacted]");
}

#[test]
fn adversarial_texts_finish() {
    let s = Secrets::new(&[&"k".repeat(8 * 1024)]);
    for text in ["%".repeat(65536), "\\".repeat(65536), "\\u".repeat(32768), "k".repeat(65536), "%25".repeat(21845)] {
        let out = s.scrub(&text);
        assert!(out.len() <= text.len() + REDACTED.len());
    }
    assert_eq!(s.scrub(&"k".repeat(65536)), REDACTED);
}

/// Scrubbing times for texts of 16 to 128 KB with an 8 KB key: prints the figures (run with
/// --release --ignored --nocapture); linear work doubles with the text.
#[test]
#[ignore]
fn scrub_timing() {
    use std::time::Instant;
    let key: String = (0..8 * 1024).map(|i| (b'a' + ((i * 7 + i / 26) % 26) as u8) as char).collect();
    let started = Instant::now();
    let s = Secrets::new(&[key.as_str()]);
    let build = started.elapsed();
    let text = |n: usize| -> String {
        let mut t = String::new();
        while t.len() < n {
            t.push_str("gateway said: %2D \\u0041 ");
            t.push_str(&key[..100]);
            t.push(' ');
        }
        t
    };
    let median = |t: &str| {
        let mut runs: Vec<f64> = (0..9)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(s.scrub(t));
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[4]
    };
    println!("scrub: building for an 8 KB key took {:.1} ms", build.as_secs_f64() * 1000.0);
    for kb in [16, 32, 64, 128] {
        let t = text(kb * 1024);
        println!("scrub: {kb} KB text {:.2} ms (median of 9)", median(&t));
    }
}

#[test]
fn data_keeps_key_like_values() {
    let s = secrets();
    let sql = "SELECT * FROM products WHERE sku = 'sk-00012345678'";
    assert_eq!(s.scrub_configured(sql), sql);
    assert_eq!(s.scrub_configured(&format!("{sql} -- {KEY}")), format!("{sql} -- [redacted]"));
    assert!(s.scrub(sql).contains("[redacted]"));
}
