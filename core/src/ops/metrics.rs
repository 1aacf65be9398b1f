//! The statistics in the Prometheus text exposition format (version 0.0.4): one family per
//! counter, labelled by database and role, and the ask latency as a histogram in seconds.

use super::stats::{Counters, ENGINES, ERROR_CLASSES, LATENCY_BOUNDS_MS, PURPOSES};
use std::fmt::Write;

/// The counters of one database and role, as named in the catalogs.
pub struct Series<'a> {
    pub database: &'a str,
    pub role: &'a str,
    pub counters: &'a Counters,
}

/// Every family, with HELP and TYPE lines, for the given series. Linear in their number.
pub fn render(series: &[Series]) -> String {
    let mut out = String::new();
    let labels = |s: &Series| format!("datname=\"{}\",rolname=\"{}\"", escape(s.database), escape(s.role));
    let mut family = |name: &str, kind: &str, help: &str, lines: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        lines(&mut out);
    };
    family("sqlchat_asks_total", "counter", "Questions asked (ask, ask_full, generate_sql).", &mut |o| {
        for s in series {
            let _ = writeln!(o, "sqlchat_asks_total{{{}}} {}", labels(s), s.counters.asks);
        }
    });
    family("sqlchat_answers_total", "counter", "Questions answered, by engine (cache: SQL reused).", &mut |o| {
        for s in series {
            for (engine, n) in ENGINES.iter().zip(s.counters.answers) {
                let _ = writeln!(o, "sqlchat_answers_total{{{},engine=\"{engine}\"}} {n}", labels(s));
            }
        }
    });
    family("sqlchat_errors_total", "counter", "Questions ended by an ERROR, by SQLSTATE class.", &mut |o| {
        for s in series {
            for (class, n) in ERROR_CLASSES.iter().zip(s.counters.errors) {
                let _ = writeln!(o, "sqlchat_errors_total{{{},class=\"{class}\"}} {n}", labels(s));
            }
        }
    });
    family(
        "sqlchat_llm_requests_total",
        "counter",
        "Requests sent to the LLM gateway, retries included, by purpose.",
        &mut |o| {
            for s in series {
                for (purpose, n) in PURPOSES.iter().zip(s.counters.llm_requests) {
                    let _ =
                        writeln!(o, "sqlchat_llm_requests_total{{{},purpose=\"{}\"}} {n}", labels(s), purpose.as_str());
                }
            }
        },
    );
    family(
        "sqlchat_llm_failures_total",
        "counter",
        "Requests to the LLM gateway that got no usable reply.",
        &mut |o| {
            for s in series {
                let _ = writeln!(o, "sqlchat_llm_failures_total{{{}}} {}", labels(s), s.counters.llm_failures);
            }
        },
    );
    family(
        "sqlchat_tokens_total",
        "counter",
        "Tokens of gateway requests: source gateway when its usage reported them, estimate (characters/4) otherwise.",
        &mut |o| {
            for s in series {
                let c = s.counters;
                for (kind, source, n) in [
                    ("prompt", "gateway", c.prompt_tokens),
                    ("completion", "gateway", c.completion_tokens),
                    ("prompt", "estimate", c.prompt_tokens_estimated),
                    ("completion", "estimate", c.completion_tokens_estimated),
                ] {
                    let _ =
                        writeln!(o, "sqlchat_tokens_total{{{},kind=\"{kind}\",source=\"{source}\"}} {n}", labels(s));
                }
            }
        },
    );
    family(
        "sqlchat_log_records_dropped_total",
        "counter",
        "Asks whose row never reached sqlchat.log (the hand-over buffer was full, or the worker could not write it).",
        &mut |o| {
            for s in series {
                let _ = writeln!(o, "sqlchat_log_records_dropped_total{{{}}} {}", labels(s), s.counters.log_dropped);
            }
        },
    );
    for (name, help, pick) in [
        (
            "sqlchat_gateway_seconds_total",
            "Time spent waiting for the LLM gateway.",
            (|c| c.gateway_us) as fn(&Counters) -> u64,
        ),
        ("sqlchat_sql_seconds_total", "Time spent running generated SQL.", |c| c.sql_us),
    ] {
        family(name, "counter", help, &mut |o| {
            for s in series {
                let _ = writeln!(o, "{name}{{{}}} {}", labels(s), seconds(pick(s.counters)));
            }
        });
    }
    family("sqlchat_ask_duration_seconds", "histogram", "Wall time of a question, answered or not.", &mut |o| {
        for s in series {
            let c = s.counters;
            let mut cumulative = 0u64;
            for (bound, n) in LATENCY_BOUNDS_MS.iter().zip(c.latency) {
                cumulative = cumulative.saturating_add(n);
                let le = *bound as f64 / 1000.0;
                let _ = writeln!(o, "sqlchat_ask_duration_seconds_bucket{{{},le=\"{le}\"}} {cumulative}", labels(s));
            }
            cumulative = cumulative.saturating_add(c.latency[LATENCY_BOUNDS_MS.len()]);
            let _ = writeln!(o, "sqlchat_ask_duration_seconds_bucket{{{},le=\"+Inf\"}} {cumulative}", labels(s));
            let _ = writeln!(o, "sqlchat_ask_duration_seconds_sum{{{}}} {}", labels(s), seconds(c.ask_us));
            let _ = writeln!(o, "sqlchat_ask_duration_seconds_count{{{}}} {cumulative}", labels(s));
        }
    });
    out
}

fn seconds(us: u64) -> String {
    format!("{:.6}", us as f64 / 1e6)
}

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Purpose;
    use crate::ops::stats::{Ending, Tokens};

    fn sample() -> Counters {
        let mut c = Counters::default();
        c.add_request(Purpose::GenerateSql, 2_000, Some(Tokens { prompt: 300, completion: 20, estimated: false }));
        c.add_ask(&Ending::Answered { engine: "llm".into(), from_cache: false }, 7_000);
        c.add_ask(&Ending::Failed { sqlstate: "53400".into() }, 90_000_000);
        c.add_log_dropped(3);
        c
    }

    #[test]
    fn every_family_has_help_and_type_and_histograms_are_cumulative() {
        let c = sample();
        let text = render(&[Series { database: "shop", role: "ann", counters: &c }]);
        for family in ["sqlchat_asks_total", "sqlchat_tokens_total", "sqlchat_ask_duration_seconds"] {
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
        assert!(text.contains("sqlchat_asks_total{datname=\"shop\",rolname=\"ann\"} 2\n"));
        assert!(text.contains("sqlchat_ask_duration_seconds_bucket{datname=\"shop\",rolname=\"ann\",le=\"0.005\"} 0\n"));
        assert!(text.contains("sqlchat_ask_duration_seconds_bucket{datname=\"shop\",rolname=\"ann\",le=\"0.01\"} 1\n"));
        assert!(text.contains("sqlchat_ask_duration_seconds_bucket{datname=\"shop\",rolname=\"ann\",le=\"60\"} 1\n"));
        assert!(text.contains("sqlchat_ask_duration_seconds_bucket{datname=\"shop\",rolname=\"ann\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("sqlchat_ask_duration_seconds_count{datname=\"shop\",rolname=\"ann\"} 2\n"));
        assert!(text.contains("sqlchat_ask_duration_seconds_sum{datname=\"shop\",rolname=\"ann\"} 90.007000\n"));
        assert!(text.contains("sqlchat_errors_total{datname=\"shop\",rolname=\"ann\",class=\"53\"} 1\n"));
        assert!(text.contains("purpose=\"generate_sql\"} 1\n"));
        assert!(text.contains("kind=\"prompt\",source=\"gateway\"} 300\n"));
        assert!(text.contains("sqlchat_log_records_dropped_total{datname=\"shop\",rolname=\"ann\"} 3\n"));
        // Every sample line belongs to a family declared above it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.iter().any(|d| name.starts_with(d.as_str())), "{line}");
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let c = Counters::default();
        let text = render(&[Series { database: "we\"ird", role: "x\ny", counters: &c }]);
        assert!(text.contains("datname=\"we\\\"ird\",rolname=\"x\\ny\""));
        assert!(!text.lines().any(|l| l == "y\"} 0"));
    }

    #[test]
    fn no_series_still_declares_the_families() {
        let text = render(&[]);
        assert!(text.contains("# TYPE sqlchat_asks_total counter"));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 0);
    }
}
