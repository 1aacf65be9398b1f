//! The OpenAI chat-completions wire format: request bodies and reply parsing.

use crate::error::{keep, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: "system".into(), content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: "user".into(), content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message { role: "assistant".into(), content: content.into() }
    }
}

/// What each request is for; sent as the `X-Sqlchat-Purpose` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    GenerateSql,
    Repair,
    Answer,
    Summarize,
    Chart,
    /// `sqlchat.check_setup()` asking the gateway for its models (GET {api_base}/models).
    CheckSetup,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::GenerateSql => "generate_sql",
            Purpose::Repair => "repair",
            Purpose::Answer => "answer",
            Purpose::Summarize => "summarize",
            Purpose::Chart => "chart",
            Purpose::CheckSetup => "check_setup",
        }
    }
}

pub fn request_body(model: &str, messages: &[Message], temperature: f64) -> Value {
    json!({
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "stream": false,
    })
}

/// Nesting deeper than this is refused before serde sees it (serde_json's own limit is 128, and
/// a reply has no reason to nest beyond a handful of levels).
pub const MAX_JSON_DEPTH: usize = 64;

/// The model names of a `GET /models` reply (`{"data": [{"id": ...}, ...]}`); an empty list when
/// the gateway answers without one.
pub fn parse_models(body: &[u8]) -> Result<Vec<String>> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Error::GatewayBadReply { detail: format!("the reply is not valid UTF-8 ({e})") })?;
    if json_depth_exceeds(text, MAX_JSON_DEPTH) {
        return Err(Error::GatewayBadReply {
            detail: format!("the reply nests JSON deeper than {MAX_JSON_DEPTH} levels"),
        });
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::GatewayBadReply { detail: format!("the reply is not JSON ({e}): {}", keep(text)) })?;
    Ok(v.get("data")
        .and_then(Value::as_array)
        .map(|models| models.iter().filter_map(|m| m.get("id").and_then(Value::as_str)).map(str::to_string).collect())
        .unwrap_or_default())
}

/// The text of the first choice of a chat-completions reply body.
pub fn parse_reply(body: &[u8]) -> Result<String> {
    parse_completion(body).map(|c| c.text)
}

/// A chat-completions reply: the first choice's text and the gateway's token counts, when its
/// `usage` object has them.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage")?;
    Some(Usage {
        prompt_tokens: u.get("prompt_tokens")?.as_u64()?,
        completion_tokens: u.get("completion_tokens")?.as_u64()?,
    })
}

pub fn parse_completion(body: &[u8]) -> Result<Completion> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Error::GatewayBadReply { detail: format!("the reply is not valid UTF-8 ({e})") })?;
    if json_depth_exceeds(text, MAX_JSON_DEPTH) {
        return Err(Error::GatewayBadReply {
            detail: format!("the reply nests JSON deeper than {MAX_JSON_DEPTH} levels"),
        });
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::GatewayBadReply { detail: format!("the reply is not JSON ({e}): {}", keep(text)) })?;
    if let Some(err) = v.get("error") {
        let msg = err.get("message").and_then(Value::as_str).unwrap_or("unknown error");
        return Err(Error::GatewayBadReply { detail: format!("the gateway reported an error: {}", keep(msg)) });
    }
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::GatewayBadReply { detail: "the reply has no \"choices\" array".into() })?;
    let first = choices
        .first()
        .ok_or_else(|| Error::GatewayBadReply { detail: "the reply's \"choices\" array is empty".into() })?;
    let message = first
        .get("message")
        .ok_or_else(|| Error::GatewayBadReply { detail: "the first choice has no \"message\"".into() })?;
    let usage = usage_of(&v);
    let text = match message.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            // Some gateways return content as [{type: text, text: ...}].
            let text: String =
                parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("");
            if text.is_empty() {
                Err(Error::GatewayBadReply { detail: "the reply's content parts hold no text".into() })
            } else {
                Ok(text)
            }
        }
        _ if message.get("tool_calls").is_some() => {
            Err(Error::GatewayBadReply { detail: "the model answered with tool_calls instead of text content".into() })
        }
        _ => Err(Error::GatewayBadReply { detail: "the reply's message has no text content".into() }),
    }?;
    Ok(Completion { text, usage })
}

/// True when brackets nest deeper than `max` outside strings (checked without recursion).
pub fn json_depth_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The message of an OpenAI-style error body (`{"error": {"message": ...}}`), else the body itself.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error").and_then(|e| e.get("message").or(Some(e))).and_then(Value::as_str).map(str::to_string)
        })
        .unwrap_or_else(|| body.to_string())
}

/// The error for a non-2xx answer: `body` is the reply's text (an OpenAI-style error or plain).
pub fn status_error(status: u16, body: &str, location: Option<&str>) -> Error {
    // Kept whole (bounded): secrets are scrubbed before the text is cut for display.
    let body = keep(&error_message(body));
    match status {
        300..=399 => Error::GatewayRedirect { status, location: location.unwrap_or("").to_string() },
        401 | 403 => Error::GatewayAuth { status, body },
        429 => Error::GatewayRateLimited { body },
        _ => Error::GatewayStatus { status, body },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content() {
        let b = br#"{"choices":[{"message":{"role":"assistant","content":"SELECT 1"}}]}"#;
        assert_eq!(parse_reply(b).unwrap(), "SELECT 1");
    }

    #[test]
    fn usage_is_read_when_the_gateway_sends_it() {
        let b =
            br#"{"choices":[{"message":{"content":"SELECT 1"}}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#;
        let c = parse_completion(b).unwrap();
        assert_eq!(c.usage, Some(Usage { prompt_tokens: 12, completion_tokens: 3 }));
        let without = br#"{"choices":[{"message":{"content":"SELECT 1"}}],"usage":{"total_tokens":15}}"#;
        assert_eq!(parse_completion(without).unwrap().usage, None);
        let negative =
            br#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-1,"completion_tokens":3}}"#;
        assert_eq!(parse_completion(negative).unwrap().usage, None);
    }

    #[test]
    fn refuses_bad_shapes() {
        for b in [
            &br#"{"choices":[]}"#[..],
            br#"{"foo":1}"#,
            br#"{"choices":[{"message":{"tool_calls":[{"id":"x"}]}}]}"#,
            br#"{"choices":[{"message":{"content":null}}]}"#,
            br#"{"choices":[{"message":{"content":"x"#,
            b"\xff\xfe",
            br#"{"error":{"message":"bad model"}}"#,
        ] {
            assert!(matches!(parse_reply(b), Err(Error::GatewayBadReply { .. })), "{:?}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let deep = "[".repeat(100_000);
        assert!(json_depth_exceeds(&deep, MAX_JSON_DEPTH));
        assert!(parse_reply(deep.as_bytes()).is_err());
        assert!(!json_depth_exceeds(r#"{"a":"[[[[[[[[[[[[["}"#, 3));
    }

    #[test]
    fn statuses() {
        assert!(matches!(status_error(302, "", Some("http://x")), Error::GatewayRedirect { status: 302, .. }));
        assert!(
            matches!(status_error(401, r#"{"error":{"message":"bad key"}}"#, None), Error::GatewayAuth { status: 401, body } if body == "bad key")
        );
        assert!(matches!(status_error(429, "", None), Error::GatewayRateLimited { .. }));
        assert!(matches!(status_error(503, "", None), Error::GatewayStatus { status: 503, .. }));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(error_message(r#"{"error":{"message":"Invalid key"}}"#), "Invalid key");
        assert_eq!(error_message("plain"), "plain");
    }
}
