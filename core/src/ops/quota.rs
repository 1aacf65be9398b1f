//! Per-role quotas: asks per hour and tokens per day, counted in fixed UTC windows (the clock
//! hour, the UTC day), so a refusal can say exactly when the window resets.

use crate::error::Error;

/// A role's limits; None is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub asks_per_hour: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.asks_per_hour.is_none() && self.tokens_per_day.is_none()
    }

    /// The stricter of two limits, each part on its own (a role under several quotas).
    pub fn stricter(self, other: Limits) -> Limits {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        Limits {
            asks_per_hour: min(self.asks_per_hour, other.asks_per_hour),
            tokens_per_day: min(self.tokens_per_day, other.tokens_per_day),
        }
    }
}

/// What a role used in the current windows. Plain integers: the extension keeps these in shared
/// memory and saves them across restarts.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The hour (seconds since the epoch / 3600) `asks` counts in.
    pub hour: u64,
    pub asks: u64,
    /// The UTC day (seconds since the epoch / 86400) `tokens` counts in.
    pub day: u64,
    pub tokens: u64,
}

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

impl Usage {
    /// Starts new windows when the clock has moved past the current ones.
    pub fn roll(&mut self, now_s: u64) {
        if self.hour != now_s / HOUR {
            self.hour = now_s / HOUR;
            self.asks = 0;
        }
        if self.day != now_s / DAY {
            self.day = now_s / DAY;
            self.tokens = 0;
        }
    }

    /// Counts one ask when the limits allow it; otherwise the refusal, counting nothing.
    pub fn admit(&mut self, limits: Limits, role: &str, now_s: u64) -> Result<(), Error> {
        self.roll(now_s);
        if let Some(limit) = limits.tokens_per_day {
            if self.tokens >= limit {
                return Err(Error::QuotaExceeded {
                    role: role.to_string(),
                    limit: format!("{limit} tokens per day ({} used)", self.tokens),
                    resets_at: utc_timestamp((self.day + 1) * DAY),
                });
            }
        }
        if let Some(limit) = limits.asks_per_hour {
            if self.asks >= limit {
                return Err(Error::QuotaExceeded {
                    role: role.to_string(),
                    limit: format!("{limit} asks per hour"),
                    resets_at: utc_timestamp((self.hour + 1) * HOUR),
                });
            }
        }
        self.asks += 1;
        Ok(())
    }

    pub fn charge_tokens(&mut self, tokens: u64, now_s: u64) {
        self.roll(now_s);
        self.tokens = self.tokens.saturating_add(tokens);
    }

    /// True when both windows are over, so the entry holds nothing worth keeping.
    pub fn is_stale(&self, now_s: u64) -> bool {
        self.hour != now_s / HOUR && self.day != now_s / DAY
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch (the proleptic Gregorian calendar).
pub fn utc_timestamp(epoch_s: u64) -> String {
    let days = (epoch_s / DAY) as i64;
    let secs = epoch_s % DAY;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: u64 = 1_764_676_800; // 2025-12-02 12:00:00 UTC

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_timestamp(NOON), "2025-12-02 12:00:00 UTC");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_timestamp(NOON + 3_599), "2025-12-02 12:59:59 UTC");
    }

    #[test]
    fn the_sixth_ask_of_five_per_hour_is_refused_until_the_next_hour() {
        let limits = Limits { asks_per_hour: Some(5), tokens_per_day: None };
        let mut u = Usage::default();
        for i in 0..5 {
            u.admit(limits, "ann", NOON + i * 60).unwrap();
        }
        let err = u.admit(limits, "ann", NOON + 3_000).unwrap_err();
        assert_eq!(err.sqlstate(), "53400");
        assert!(err.hint().contains("2025-12-02 13:00:00 UTC"), "{:?}", err.hint());
        assert_eq!(u.asks, 5, "a refused ask is not counted");
        u.admit(limits, "ann", NOON + 3_600).unwrap();
        assert_eq!(u.asks, 1);
    }

    #[test]
    fn tokens_per_day_refuse_once_used_up_and_reset_at_midnight() {
        let limits = Limits { asks_per_hour: None, tokens_per_day: Some(1000) };
        let mut u = Usage::default();
        u.admit(limits, "ann", NOON).unwrap();
        u.charge_tokens(999, NOON);
        u.admit(limits, "ann", NOON + 1).unwrap();
        u.charge_tokens(5, NOON + 2);
        let err = u.admit(limits, "ann", NOON + 3).unwrap_err();
        assert!(err.hint().contains("2025-12-03 00:00:00 UTC"), "{:?}", err.hint());
        assert!(err.to_string().contains("1004 used"), "{err}");
        u.admit(limits, "ann", NOON + 12 * 3600).unwrap();
    }

    #[test]
    fn the_stricter_limit_of_each_kind_wins() {
        let a = Limits { asks_per_hour: Some(10), tokens_per_day: None };
        let b = Limits { asks_per_hour: Some(20), tokens_per_day: Some(5) };
        assert_eq!(a.stricter(b), Limits { asks_per_hour: Some(10), tokens_per_day: Some(5) });
        assert!(Limits::default().is_unlimited());
    }

    #[test]
    fn stale_entries_are_those_whose_windows_are_both_over() {
        let mut u = Usage::default();
        u.roll(NOON);
        assert!(!u.is_stale(NOON + 3_600), "the day window is still open");
        assert!(u.is_stale(NOON + DAY));
    }
}
