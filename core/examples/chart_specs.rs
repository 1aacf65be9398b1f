//! Prints `suggest_chart` output for fixed sets of result shapes, one JSON object per line, for
//! tests/browser to check against the official Vega-Lite schema and to draw with vega-embed.
//!
//! ```text
//! cargo run -p sqlchat-core --example chart_specs > specs.jsonl
//! ```
//! Each line is `{"set", "name", "question", "sql", "intended", "suggestion"}`: `intended` is the
//! chart type the case was written for (null when any will do), `suggestion` what `suggest_chart`
//! returned. The sets: `browser`, shaped like answers over the demo shop (demo/shop.sql) and drawn
//! in the browser; `labelled`, the hand-labelled shapes of the chart tests; `edge`, their edge
//! cases (core/tests/chart/cases.rs). Rows are written by hand or made from a fixed formula, so
//! every run prints the same specs.

#[path = "../tests/chart/cases.rs"]
mod cases;

use std::io::{self, Write};
use std::process::ExitCode;

use serde_json::{json, Value};
use sqlchat_core::chart::suggest_chart;

struct Case {
    name: &'static str,
    intended: &'static str,
    question: &'static str,
    sql: &'static str,
    rows: Value,
}

const MONTHS_2025: [&str; 12] = [
    "2025-01-01",
    "2025-02-01",
    "2025-03-01",
    "2025-04-01",
    "2025-05-01",
    "2025-06-01",
    "2025-07-01",
    "2025-08-01",
    "2025-09-01",
    "2025-10-01",
    "2025-11-01",
    "2025-12-01",
];

/// A fixed pseudo-random number in [0, 1) for `key`, so generated rows never change between runs.
fn unit_noise(key: u64) -> f64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d4_9bb1_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "monthly_revenue",
            intended: "line",
            question: "How did revenue develop month by month in 2025?",
            sql: "SELECT date_trunc('month', ordered_at)::date AS month, sum(total) AS revenue \
                  FROM shop.order_totals WHERE status <> 'cancelled' \
                  AND ordered_at >= '2025-01-01' AND ordered_at < '2026-01-01' \
                  GROUP BY 1 ORDER BY 1",
            rows: {
                let revenue = [
                    9_412.30, 8_955.10, 10_204.75, 10_880.40, 11_652.90, 11_120.35, 10_014.80, 9_487.65, 11_903.20,
                    13_276.55, 19_842.10, 21_530.45,
                ];
                MONTHS_2025
                    .iter()
                    .zip(revenue)
                    .map(|(month, revenue)| json!({"month": month, "revenue": revenue}))
                    .collect()
            },
        },
        Case {
            name: "monthly_orders_by_channel",
            intended: "line",
            question: "Orders per month and sales channel in 2025",
            sql: "SELECT date_trunc('month', ordered_at)::date AS month, channel, count(*) AS orders \
                  FROM shop.orders WHERE ordered_at >= '2025-01-01' AND ordered_at < '2026-01-01' \
                  GROUP BY 1, 2 ORDER BY 1, 2",
            rows: {
                let monthly = [112.0, 104.0, 121.0, 128.0, 137.0, 131.0, 118.0, 112.0, 140.0, 156.0, 233.0, 254.0];
                let channels = [("web", 0.46), ("mobile_app", 0.32), ("marketplace", 0.17), ("phone", 0.05)];
                let mut rows = Vec::new();
                for (m, (month, total)) in MONTHS_2025.iter().zip(monthly).enumerate() {
                    for (c, (channel, share)) in channels.iter().enumerate() {
                        let noise = 0.9 + 0.2 * unit_noise((m * 10 + c) as u64);
                        let orders = (total * share * noise).round() as i64;
                        rows.push(json!({"month": month, "channel": channel, "orders": orders}));
                    }
                }
                Value::Array(rows)
            },
        },
        Case {
            name: "orders_by_status",
            intended: "bar",
            question: "How many orders are in each status?",
            sql: "SELECT status, count(*) AS orders FROM shop.orders GROUP BY status ORDER BY orders DESC",
            rows: json!([
                {"status": "delivered", "orders": 2668},
                {"status": "cancelled", "orders": 139},
                {"status": "shipped", "orders": 94},
                {"status": "paid", "orders": 61},
                {"status": "pending", "orders": 38},
            ]),
        },
        Case {
            name: "top_products_by_revenue",
            intended: "horizontal_bar",
            question: "Which ten products earned the most in 2025?",
            sql: "SELECT p.name AS product, sum(i.quantity * i.unit_price) AS revenue \
                  FROM shop.order_items i JOIN shop.products p USING (product_id) \
                  JOIN shop.orders o USING (order_id) \
                  WHERE o.ordered_at >= '2025-01-01' AND o.status <> 'cancelled' \
                  GROUP BY p.name ORDER BY revenue DESC LIMIT 10",
            rows: json!([
                {"product": "Wireless Noise-Cancelling Headphones", "revenue": 14_129.00},
                {"product": "Ergonomic Desk Chair", "revenue": 7_719.00},
                {"product": "Electric Standing Desk Frame", "revenue": 6_909.00},
                {"product": "Conical Burr Coffee Grinder", "revenue": 5_607.00},
                {"product": "Ethiopia Yirgacheffe Beans 1kg", "revenue": 5_403.30},
                {"product": "True Wireless Earbuds", "revenue": 5_251.00},
                {"product": "Bookshelf Speakers (Pair)", "revenue": 5_022.00},
                {"product": "Ultralight Tent 2P", "revenue": 4_913.00},
                {"product": "Colombia Supremo Beans 1kg", "revenue": 4_128.00},
                {"product": "Chef's Knife 20cm", "revenue": 3_774.00},
            ]),
        },
        Case {
            name: "revenue_by_country_and_segment",
            intended: "stacked_bar",
            question: "Revenue by country, consumers and businesses",
            sql: "SELECT c.country, c.segment, sum(t.total) AS revenue \
                  FROM shop.order_totals t JOIN shop.customers c USING (customer_id) \
                  WHERE t.status <> 'cancelled' GROUP BY 1, 2 ORDER BY 1, 2",
            rows: json!([
                {"country": "France", "segment": "consumer", "revenue": 38_410.25},
                {"country": "France", "segment": "business", "revenue": 14_902.60},
                {"country": "Germany", "segment": "consumer", "revenue": 47_288.90},
                {"country": "Germany", "segment": "business", "revenue": 19_654.15},
                {"country": "Netherlands", "segment": "consumer", "revenue": 24_117.40},
                {"country": "Netherlands", "segment": "business", "revenue": 9_874.30},
                {"country": "Spain", "segment": "consumer", "revenue": 25_930.70},
                {"country": "Spain", "segment": "business", "revenue": 6_412.85},
                {"country": "United Kingdom", "segment": "consumer", "revenue": 41_876.20},
                {"country": "United Kingdom", "segment": "business", "revenue": 17_339.95},
            ]),
        },
        Case {
            name: "rating_by_category_and_segment",
            intended: "grouped_bar",
            question: "Average review rating per category for consumers and businesses",
            sql: "SELECT cat.name AS category, c.segment, round(avg(r.rating), 2) AS avg_rating \
                  FROM shop.reviews r JOIN shop.products p USING (product_id) \
                  JOIN shop.categories cat USING (category_id) \
                  JOIN shop.customers c USING (customer_id) GROUP BY 1, 2 ORDER BY 1, 2",
            rows: {
                let categories = [
                    ("Audio", 3.86, 3.71),
                    ("Books", 4.47, 4.52),
                    ("Coffee & Tea", 4.29, 4.18),
                    ("Home Office", 3.88, 4.02),
                    ("Kitchen", 4.27, 4.35),
                    ("Outdoor", 4.38, 4.29),
                    ("Personal Care", 3.82, 3.66),
                    ("Toys & Games", 4.21, 4.11),
                ];
                categories
                    .iter()
                    .flat_map(|(category, consumer, business)| {
                        [
                            json!({"category": category, "segment": "consumer", "avg_rating": consumer}),
                            json!({"category": category, "segment": "business", "avg_rating": business}),
                        ]
                    })
                    .collect()
            },
        },
        Case {
            name: "order_share_by_channel",
            intended: "pie",
            question: "What percentage of orders comes through each channel?",
            sql: "SELECT channel, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct_of_orders \
                  FROM shop.orders GROUP BY channel",
            rows: json!([
                {"channel": "web", "pct_of_orders": 46.2},
                {"channel": "mobile_app", "pct_of_orders": 31.5},
                {"channel": "marketplace", "pct_of_orders": 17.1},
                {"channel": "phone", "pct_of_orders": 5.2},
            ]),
        },
        Case {
            name: "payments_by_method",
            intended: "donut",
            question: "Breakdown of the money received by payment method",
            sql: "SELECT method, sum(amount) AS amount FROM shop.payments GROUP BY method",
            rows: json!([
                {"method": "card", "amount": 128_441.70},
                {"method": "paypal", "amount": 77_902.35},
                {"method": "bank_transfer", "amount": 38_463.10},
            ]),
        },
        Case {
            name: "price_against_units_sold",
            intended: "scatter",
            question: "Is there a relationship between a product's price and the units it sold?",
            sql: "SELECT p.name AS product, cat.name AS category, p.unit_price, sum(i.quantity) AS units_sold \
                  FROM shop.products p JOIN shop.categories cat USING (category_id) \
                  JOIN shop.order_items i USING (product_id) GROUP BY 1, 2, 3",
            rows: {
                // (product, category, price, relative demand) as in the demo shop's catalogue.
                let products = [
                    ("Ethiopia Yirgacheffe Beans 1kg", "Coffee & Tea", 24.90, 9.0),
                    ("Colombia Supremo Beans 1kg", "Coffee & Tea", 21.50, 8.0),
                    ("House Espresso Blend 500g", "Coffee & Tea", 12.90, 12.0),
                    ("Sencha Green Tea 100g", "Coffee & Tea", 8.90, 5.0),
                    ("Ceremonial Matcha 30g", "Coffee & Tea", 19.90, 3.0),
                    ("Conical Burr Coffee Grinder", "Kitchen", 89.00, 3.0),
                    ("Gooseneck Kettle 1L", "Kitchen", 59.00, 3.0),
                    ("Cast Iron Skillet 26cm", "Kitchen", 39.90, 3.5),
                    ("Chef's Knife 20cm", "Kitchen", 74.00, 2.5),
                    ("French Press 1L", "Kitchen", 29.90, 4.0),
                    ("Ergonomic Desk Chair", "Home Office", 249.00, 1.5),
                    ("Electric Standing Desk Frame", "Home Office", 329.00, 1.0),
                    ("LED Desk Lamp", "Home Office", 44.90, 3.5),
                    ("Dotted Notebook A5", "Home Office", 12.50, 7.0),
                    ("Wireless Noise-Cancelling Headphones", "Audio", 199.00, 3.6),
                    ("True Wireless Earbuds", "Audio", 89.00, 4.5),
                    ("Bookshelf Speakers (Pair)", "Audio", 279.00, 1.0),
                    ("Mini Bluetooth Speaker", "Audio", 49.00, 4.0),
                    ("Ultralight Tent 2P", "Outdoor", 289.00, 1.0),
                    ("Insulated Water Bottle 750ml", "Outdoor", 27.90, 6.0),
                    ("Merino Hiking Socks", "Outdoor", 19.90, 5.0),
                    ("The Coffee Atlas", "Books", 34.00, 2.0),
                    ("Deep Work in Practice", "Books", 18.00, 3.0),
                    ("Shea Butter Hand Cream", "Personal Care", 12.90, 5.0),
                    ("Sonic Electric Toothbrush", "Personal Care", 69.00, 2.0),
                    ("Wooden Building Blocks", "Toys & Games", 39.90, 2.5),
                    ("Quick Fox Card Game", "Toys & Games", 12.90, 4.0),
                    ("Walnut Chess Set", "Toys & Games", 89.00, 1.2),
                ];
                products
                    .iter()
                    .enumerate()
                    .map(|(i, (product, category, price, demand))| {
                        let noise = 0.85 + 0.3 * unit_noise(100 + i as u64);
                        let units = (demand * 38.0 * noise).round() as i64;
                        json!({
                            "product": product, "category": category,
                            "unit_price": price, "units_sold": units
                        })
                    })
                    .collect()
            },
        },
        Case {
            name: "order_value_distribution",
            intended: "histogram",
            question: "How are order values distributed?",
            sql: "SELECT order_id, total FROM shop.order_totals WHERE status <> 'cancelled'",
            rows: (1..=400u64)
                .map(|order_id| {
                    // Right-skewed like real baskets: many small orders, a long tail of big ones.
                    let u = unit_noise(1_000 + order_id).max(1e-6);
                    let total = 15.0 + 60.0 * (-u.ln()) * (0.6 + 0.8 * unit_noise(5_000 + order_id));
                    json!({"order_id": order_id, "total": cents(total)})
                })
                .collect(),
        },
        Case {
            name: "orders_by_weekday_and_hour",
            intended: "heatmap",
            question: "When do customers order, by weekday and hour?",
            sql: "SELECT to_char(ordered_at AT TIME ZONE 'Europe/Berlin', 'Dy') AS weekday, \
                  extract(hour FROM ordered_at AT TIME ZONE 'Europe/Berlin')::int AS hour, count(*) AS orders \
                  FROM shop.orders GROUP BY 1, 2 ORDER BY 1, 2",
            rows: {
                let weekdays = [
                    ("Mon", 1.05),
                    ("Tue", 1.00),
                    ("Wed", 1.00),
                    ("Thu", 1.00),
                    ("Fri", 0.95),
                    ("Sat", 0.85),
                    ("Sun", 1.15),
                ];
                let mut rows = Vec::new();
                for (d, (weekday, busy)) in weekdays.iter().enumerate() {
                    for hour in 7..=23u64 {
                        // Orders cluster around midday and the evening.
                        let daytime = 1.0
                            + 0.8 * (-((hour as f64 - 13.0) / 3.0).powi(2)).exp()
                            + 1.2 * (-((hour as f64 - 20.0) / 2.0).powi(2)).exp();
                        let noise = 0.85 + 0.3 * unit_noise(2_000 + d as u64 * 100 + hour);
                        let orders = (14.0 * busy * daytime * noise).round() as i64;
                        rows.push(json!({"weekday": weekday, "hour": hour, "orders": orders}));
                    }
                }
                Value::Array(rows)
            },
        },
        Case {
            name: "customer_count",
            intended: "kpi",
            question: "How many customers do we have?",
            sql: "SELECT count(*) AS customers FROM shop.customers",
            rows: json!([{"customers": 200}]),
        },
        Case {
            name: "average_order_value",
            intended: "kpi",
            question: "Average order value in 2025",
            sql: "SELECT round(avg(total), 2) AS avg_order_value FROM shop.order_totals \
                  WHERE ordered_at >= '2025-01-01' AND status <> 'cancelled'",
            rows: json!([{"avg_order_value": 84.37}]),
        },
        Case {
            name: "berlin_business_customers",
            intended: "table",
            question: "List our business customers in Berlin",
            sql: "SELECT full_name, email, signup_date FROM shop.customers \
                  WHERE city = 'Berlin' AND segment = 'business' ORDER BY signup_date",
            rows: json!([
                {"full_name": "Nordlicht Design GmbH", "email": "orders@nordlichtdesign.de", "signup_date": "2024-01-02"},
                {"full_name": "Bergblick Consulting GmbH", "email": "orders@bergblickconsulting.de", "signup_date": "2024-01-09"},
                {"full_name": "Morgenrot Media GmbH", "email": "orders@morgenrotmedia.de", "signup_date": "2024-04-18"},
                {"full_name": "Lindenhof Studio GmbH", "email": "orders@lindenhofstudio.de", "signup_date": "2024-08-27"},
                {"full_name": "Anker Logistics GmbH", "email": "orders@ankerlogistics.de", "signup_date": "2025-02-11"},
                {"full_name": "Elbe Architects GmbH", "email": "orders@elbearchitects.de", "signup_date": "2025-06-30"},
            ]),
        },
        Case {
            name: "largest_order_summary",
            intended: "table",
            question: "Details of the largest order",
            sql: "SELECT order_id, ordered_at, status, units, total FROM shop.order_totals \
                  ORDER BY total DESC LIMIT 1",
            rows: json!([{
                "order_id": 2817, "ordered_at": "2025-11-28 19:42:13+01", "status": "delivered",
                "units": 4, "total": 1_106.80
            }]),
        },
        Case {
            name: "orders_before_launch",
            intended: "table",
            question: "Which orders were placed before the shop opened?",
            sql: "SELECT order_id, ordered_at, total FROM shop.order_totals \
                  WHERE ordered_at < '2024-01-01' ORDER BY ordered_at",
            rows: json!([]),
        },
    ]
}

/// Every case with the set it belongs to.
fn all_cases() -> Vec<(&'static str, cases::Case)> {
    let browser = cases().into_iter().map(|c| cases::Case {
        name: c.name.to_string(),
        question: c.question.to_string(),
        sql: c.sql.to_string(),
        rows: c.rows,
        expect: Some(c.intended.to_string()),
    });
    let labelled = cases::labelled_cases().into_iter().map(|c| ("labelled", c));
    let edge = cases::edge_cases().into_iter().map(|c| ("edge", c));
    browser.map(|c| ("browser", c)).chain(labelled).chain(edge).collect()
}

fn main() -> ExitCode {
    let mut out = io::stdout().lock();
    for (set, case) in all_cases() {
        let suggestion = match suggest_chart(&case.question, &case.sql, &case.rows) {
            Ok(suggestion) => suggestion,
            Err(e) => {
                eprintln!("{set}/{}: {e}", case.name);
                return ExitCode::FAILURE;
            }
        };
        let line = json!({
            "set": set,
            "name": case.name,
            "question": case.question,
            "sql": case.sql,
            "intended": case.expect,
            "suggestion": suggestion,
        });
        if writeln!(out, "{line}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
