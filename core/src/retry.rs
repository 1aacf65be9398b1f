//! When a failed gateway call is tried again, after how long, and when the next fallback model
//! gets its turn. Pure: the extension supplies the clock and the jitter.

use crate::error::Error;
use std::time::Duration;

/// First back-off; doubled on each retry, with jitter, up to `MAX_BACKOFF`.
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// Whether the same request may succeed if sent again to the same model: rate limiting,
/// overloaded or restarting gateways, and connections that broke.
pub fn is_retryable(e: &Error) -> bool {
    match e {
        Error::GatewayRateLimited { .. } => true,
        Error::GatewayStatus { status, .. } => matches!(status, 502..=504),
        Error::GatewayConnectionLost { .. } => true,
        _ => false,
    }
}

/// Whether another model might succeed where this one failed. Not for the key, the settings,
/// TLS, redirects or a cancel: those fail the same for every model.
pub fn falls_back(e: &Error) -> bool {
    match e {
        Error::GatewayRateLimited { .. }
        | Error::GatewayConnectionLost { .. }
        | Error::GatewayTimeout { .. }
        | Error::GatewayReplyTooLarge { .. }
        | Error::GatewayBadReply { .. } => true,
        Error::GatewayStatus { status, .. } => !(300..400).contains(status),
        _ => false,
    }
}

/// The pause before retry number `retry` (1 for the first retry): the server's Retry-After when
/// it gave one, else exponential back-off scaled by `jitter` in [0, 1) to between half and all
/// of the step ("equal jitter"), so that many backends do not retry in step.
pub fn backoff(retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(d) = retry_after {
        return d;
    }
    let step = BASE_BACKOFF.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.5 };
    step.mul_f64(0.5 + 0.5 * jitter)
}

/// A Retry-After header value: delay-seconds or an HTTP-date (IMF-fixdate), as the time to wait
/// from `now_unix` (seconds since 1970). None when unreadable.
pub fn parse_retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_http_date(v)?;
    Some(Duration::from_secs(when.saturating_sub(now_unix)))
}

/// Seconds since 1970 of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: u64 = parts[0].parse().ok()?;
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == parts[1])? as u64 + 1;
    let year: u64 = parts[2].parse().ok()?;
    let hms: Vec<u64> = parts[3].split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_retry() {
        assert!(is_retryable(&Error::GatewayRateLimited { body: String::new() }));
        for s in [502, 503, 504] {
            assert!(is_retryable(&Error::GatewayStatus { status: s, body: String::new() }));
        }
        for s in [400, 404, 500, 302] {
            assert!(!is_retryable(&Error::GatewayStatus { status: s, body: String::new() }));
        }
        assert!(!is_retryable(&Error::GatewayAuth { status: 401, body: String::new() }));
        assert!(!is_retryable(&Error::GatewayTimeout { timeout_ms: 1 }));
        assert!(!falls_back(&Error::GatewayAuth { status: 403, body: String::new() }));
        assert!(!falls_back(&Error::GatewayStatus { status: 302, body: String::new() }));
        assert!(falls_back(&Error::GatewayStatus { status: 404, body: String::new() }));
        assert!(!falls_back(&Error::Cancelled { message: String::new() }));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        assert_eq!(backoff(1, None, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(1, None, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(3, None, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(30, None, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(2, None, f64::NAN), Duration::from_millis(300));
        assert_eq!(backoff(1, Some(Duration::from_secs(2)), 0.3), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 3 ", 0), Some(Duration::from_secs(3)));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"), Some(951_825_600));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", 784_111_777), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 900_000_000), Some(Duration::ZERO));
        for bad in [
            "",
            "soon",
            "-1",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad}");
        }
    }
}
