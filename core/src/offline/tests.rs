//! The planner on hand-built catalogs with a fake probe that knows a few values.

use serde_json::json;

use super::*;
use crate::catalog::{Catalog, Column, ForeignKey, Table};
use crate::result::ResultColumn;

/// Plans against a catalog with an index built for it.
fn plan(catalog: &Catalog, question: &str, probe: &mut dyn Probe) -> Decision {
    super::plan(&View::new(catalog, None), question, probe)
}

fn col(name: &str, data_type: &str, category: char) -> Column {
    Column::new(name, data_type, category)
}

fn table(name: &str, columns: Vec<Column>) -> Table {
    Table { row_estimate: 100.0, ..Table::new("public", name, columns) }
}

fn shop() -> Catalog {
    let mut orders = table(
        "orders",
        vec![
            col("id", "integer", 'N'),
            col("customer_id", "integer", 'N'),
            col("status", "text", 'S'),
            col("amount", "numeric(10,2)", 'N'),
            col("created_at", "timestamp with time zone", 'D'),
        ],
    );
    orders.primary_key = vec!["id".into()];
    orders.foreign_keys = vec![ForeignKey {
        columns: vec!["customer_id".into()],
        ref_schema: "public".into(),
        ref_table: "customers".into(),
        ref_columns: vec!["id".into()],
    }];
    let mut customers = table(
        "customers",
        vec![
            col("id", "integer", 'N'),
            col("name", "text", 'S'),
            col("city", "text", 'S'),
            col("signup_date", "date", 'D'),
        ],
    );
    customers.primary_key = vec!["id".into()];
    let mut restaurants = table(
        "restaurant",
        vec![
            col("id", "bigint", 'N'),
            col("name", "text", 'S'),
            col("food_type", "text", 'S'),
            col("city_name", "text", 'S'),
            col("rating", "real", 'N'),
        ],
    );
    restaurants.columns[4].comment = Some("The rating of the restaurant on a scale from 1 to 5".into());
    let mut lake = table(
        "lake",
        vec![col("lake_name", "text", 'S'), col("area", "double precision", 'N'), col("state_name", "text", 'S')],
    );
    lake.columns[1].comment = Some("The area of the lake in square kilometers".into());
    Catalog { tables: vec![orders, customers, restaurants, lake] }
}

/// Knows the values a test database would hold; records every query it ran.
struct FakeProbe {
    values: Vec<(&'static str, &'static str)>,
    queries: Vec<String>,
}

impl FakeProbe {
    fn new(values: &[(&'static str, &'static str)]) -> FakeProbe {
        FakeProbe { values: values.to_vec(), queries: vec![] }
    }
}

impl Probe for FakeProbe {
    fn query(&mut self, sql: &str) -> Result<ResultSet, String> {
        self.queries.push(sql.to_string());
        let mut rows = Vec::new();
        // Each UNION part reads "(SELECT DISTINCT <ci> AS c, <col>::text ... ARRAY[...]"
        for part in sql.split(" UNION ALL ") {
            let ci: u64 = part
                .trim_start_matches("(SELECT DISTINCT ")
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let col = part.split(" AS c, ").nth(1).and_then(|s| s.split("::text").next()).unwrap_or("");
            let array = part.split("ARRAY[").nth(1).and_then(|s| s.split(']').next()).unwrap_or("");
            for (c, v) in &self.values {
                if *c == col && array.contains(&format!("'{}'", v.to_lowercase())) {
                    rows.push(vec![json!(ci), json!(v)]);
                }
            }
        }
        Ok(ResultSet {
            columns: vec![
                ResultColumn { name: "c".into(), type_name: "integer".into(), category: 'N' },
                ResultColumn { name: "v".into(), type_name: "text".into(), category: 'S' },
            ],
            rows,
            truncated: false,
            private: vec![],
        })
    }
}

fn sql_of(question: &str, probe: &mut FakeProbe) -> String {
    match plan(&shop(), question, probe) {
        Decision::Answer(p) => p.sql,
        Decision::Decline(r) => panic!("declined {question:?}: {r}"),
    }
}

fn declines(question: &str) -> bool {
    let mut probe = FakeProbe::new(&[("city_name", "New York"), ("food_type", "Italian"), ("status", "shipped")]);
    matches!(plan(&shop(), question, &mut probe), Decision::Decline(_))
}

fn restaurants_probe() -> FakeProbe {
    FakeProbe::new(&[
        ("city_name", "New York"),
        ("city_name", "San Francisco"),
        ("food_type", "Italian"),
        ("status", "shipped"),
    ])
}

#[test]
fn counts() {
    let mut p = restaurants_probe();
    assert_eq!(sql_of("how many orders are there?", &mut p), "SELECT count(*) AS count FROM public.orders");
    assert_eq!(
        sql_of("How many restaurants are there in San Francisco?", &mut p),
        "SELECT count(*) AS count FROM public.restaurant WHERE city_name = 'San Francisco'"
    );
    assert_eq!(
        sql_of("number of italian restaurants in the city of new york", &mut p),
        "SELECT count(*) AS count FROM public.restaurant WHERE food_type = 'Italian' AND city_name = 'New York'"
    );
}

#[test]
fn grouped_and_ranked() {
    let mut p = restaurants_probe();
    assert_eq!(
        sql_of("What is the average rating of restaurants in each city?", &mut p),
        "SELECT city_name, avg(rating) AS average_rating FROM public.restaurant GROUP BY city_name ORDER BY average_rating DESC NULLS LAST, city_name"
    );
    assert_eq!(
        sql_of("Which city has the most restaurants?", &mut p),
        "SELECT city_name, count(*) AS count FROM public.restaurant GROUP BY city_name ORDER BY count DESC NULLS LAST, city_name LIMIT 1"
    );
    assert_eq!(
        sql_of("top 3 restaurants by rating", &mut p),
        "SELECT name, id, rating FROM public.restaurant ORDER BY rating DESC NULLS LAST, name, id LIMIT 3"
    );
    assert_eq!(
        sql_of("Total number of restaurants serving each type of food", &mut p),
        "SELECT food_type, count(*) AS count FROM public.restaurant GROUP BY food_type ORDER BY count DESC NULLS LAST, food_type"
    );
}

#[test]
fn time_buckets_and_ranges() {
    let mut p = restaurants_probe();
    assert_eq!(
        sql_of("orders per month in 2023", &mut p),
        "SELECT date_trunc('month', created_at)::date AS month, count(*) AS count FROM public.orders \
         WHERE created_at >= DATE '2023-01-01' AND created_at < DATE '2024-01-01' GROUP BY month ORDER BY month"
    );
    assert_eq!(
        sql_of("total amount of orders in the last 30 days", &mut p),
        "SELECT sum(amount) AS total_amount FROM public.orders WHERE created_at >= CURRENT_DATE - INTERVAL '30 day'"
    );
    assert_eq!(
        sql_of("How many shipped orders were there on or after Apr 1, 2023?", &mut p),
        "SELECT count(*) AS count FROM public.orders WHERE status = 'shipped' AND created_at >= DATE '2023-04-01'"
    );
}

#[test]
fn lists_with_filters_and_units_from_comments() {
    let mut p = restaurants_probe();
    assert_eq!(
        sql_of("What are the names of restaurants with a rating above 4.5?", &mut p),
        "SELECT name FROM public.restaurant WHERE rating > 4.5 ORDER BY name"
    );
    assert_eq!(
        sql_of("Which lakes have the largest areas in square kilometers, ordered from largest to smallest?", &mut p),
        "SELECT lake_name, area FROM public.lake ORDER BY area DESC NULLS LAST, lake_name"
    );
}

#[test]
fn declines_what_it_cannot_account_for() {
    assert!(declines("How can companies foster innovation within their culture?"));
    assert!(declines("Which restaurants do not serve Italian food?"));
    assert!(declines("How many restaurants offer takeout services?"));
    assert!(declines("What is the national animal of Canada?"));
    assert!(declines("ratio of restaurants to orders"));
    assert!(declines("restaurants in Paris"));
    assert!(declines(""));
    assert!(declines("'); DROP TABLE orders; --"));
}

#[test]
fn probes_are_bounded_and_quoted() {
    let mut p = restaurants_probe();
    let _ = plan(&shop(), "how many restaurants in 'O'Hare' or Joe's", &mut p);
    assert!(p.queries.len() <= 1);
    for q in &p.queries {
        assert!(q.contains("LIMIT 20"));
        assert!(!q.contains("'O'H"), "{q}");
    }
}

#[test]
fn answers_in_words_with_suggestions_that_plan() {
    let mut p = restaurants_probe();
    let Decision::Answer(plan_) = plan(&shop(), "How many restaurants are there in San Francisco?", &mut p) else {
        panic!()
    };
    let rs = ResultSet { columns: vec![], rows: vec![vec![json!(42)]], truncated: false, private: vec![] };
    let (answer, suggestions) = render_answer(&plan_, &rs);
    assert_eq!(answer, "There are 42 restaurants where city name is San Francisco.");
    assert!((2..=3).contains(&suggestions.len()), "{suggestions:?}");
    for s in &suggestions {
        assert!(
            matches!(plan(&shop(), s, &mut restaurants_probe()), Decision::Answer(_)),
            "suggestion does not plan: {s}"
        );
    }

    let Decision::Answer(top) = plan(&shop(), "top 2 restaurants by rating", &mut p) else { panic!() };
    let rs = ResultSet {
        columns: vec![],
        rows: vec![vec![json!("Pasta House"), json!(1), json!(4.7)], vec![json!("Sushi Bar"), json!(3), json!(4.25)]],
        truncated: false,
        private: vec![],
    };
    assert_eq!(render_answer(&top, &rs).0, "The top 2 restaurants by rating are: Pasta House (4.7), Sushi Bar (4.25).");
    let Decision::Answer(avg) = plan(&shop(), "average amount of orders", &mut p) else { panic!() };
    let rs = ResultSet { columns: vec![], rows: vec![vec![json!(1234.5678)]], truncated: false, private: vec![] };
    assert_eq!(render_answer(&avg, &rs).0, "For orders, the average amount is 1,234.57.");
}

fn fk(column: &str, table: &str, ref_column: &str) -> ForeignKey {
    ForeignKey {
        columns: vec![column.into()],
        ref_schema: "public".into(),
        ref_table: table.into(),
        ref_columns: vec![ref_column.into()],
    }
}

fn keyed(name: &str, key: &str, columns: Vec<Column>, fks: Vec<ForeignKey>) -> Table {
    let mut t = table(name, columns);
    t.primary_key = vec![key.into()];
    t.foreign_keys = fks;
    t
}

/// A shop whose tables are joined by declared foreign keys.
fn joined_shop() -> Catalog {
    let categories =
        keyed("categories", "category_id", vec![col("category_id", "integer", 'N'), col("name", "text", 'S')], vec![]);
    let products = keyed(
        "products",
        "product_id",
        vec![col("product_id", "integer", 'N'), col("name", "text", 'S'), col("category_id", "integer", 'N')],
        vec![fk("category_id", "categories", "category_id")],
    );
    let customers = keyed(
        "customers",
        "customer_id",
        vec![
            col("customer_id", "integer", 'N'),
            col("full_name", "text", 'S'),
            col("city", "text", 'S'),
            col("segment", "text", 'S'),
        ],
        vec![],
    );
    let orders = keyed(
        "orders",
        "order_id",
        vec![
            col("order_id", "integer", 'N'),
            col("customer_id", "integer", 'N'),
            col("status", "text", 'S'),
            col("ordered_at", "date", 'D'),
        ],
        vec![fk("customer_id", "customers", "customer_id")],
    );
    let payments = keyed(
        "payments",
        "payment_id",
        vec![
            col("payment_id", "integer", 'N'),
            col("order_id", "integer", 'N'),
            col("amount", "numeric(10,2)", 'N'),
            col("method", "text", 'S'),
        ],
        vec![fk("order_id", "orders", "order_id")],
    );
    let reviews = keyed(
        "reviews",
        "review_id",
        vec![
            col("review_id", "integer", 'N'),
            col("product_id", "integer", 'N'),
            col("customer_id", "integer", 'N'),
            col("rating", "smallint", 'N'),
        ],
        vec![fk("product_id", "products", "product_id"), fk("customer_id", "customers", "customer_id")],
    );
    Catalog { tables: vec![categories, products, customers, orders, payments, reviews] }
}

fn shop_probe() -> FakeProbe {
    FakeProbe::new(&[("city", "London"), ("status", "cancelled"), ("status", "delivered"), ("segment", "business")])
}

fn joined_sql(catalog: &Catalog, question: &str) -> String {
    match plan(catalog, question, &mut shop_probe()) {
        Decision::Answer(p) => p.sql,
        Decision::Decline(r) => panic!("declined {question:?}: {r}"),
    }
}

fn joined_declines(catalog: &Catalog, question: &str) -> bool {
    matches!(plan(catalog, question, &mut shop_probe()), Decision::Decline(_))
}

#[test]
fn groups_by_a_table_two_foreign_keys_away() {
    assert_eq!(
        joined_sql(&joined_shop(), "average rating by product category"),
        "SELECT categories.name, avg(reviews.rating) AS average_rating FROM public.reviews \
         JOIN public.products ON products.product_id = reviews.product_id \
         JOIN public.categories ON categories.category_id = products.category_id \
         GROUP BY categories.name, categories.category_id \
         ORDER BY average_rating DESC NULLS LAST, categories.name, categories.category_id"
    );
}

#[test]
fn ranks_the_rows_of_a_referenced_table() {
    assert_eq!(
        joined_sql(&joined_shop(), "top 5 customers by number of orders"),
        "SELECT customers.full_name, count(*) AS count FROM public.orders \
         JOIN public.customers ON customers.customer_id = orders.customer_id \
         GROUP BY customers.full_name, customers.customer_id \
         ORDER BY count DESC NULLS LAST, customers.full_name, customers.customer_id LIMIT 5"
    );
    assert!(joined_sql(&joined_shop(), "Which customer has the most orders?").ends_with("LIMIT 1"));
}

#[test]
fn filters_on_a_joined_tables_values() {
    let catalog = joined_shop();
    let Decision::Answer(p) = plan(&catalog, "how many orders from customers in London", &mut shop_probe()) else {
        panic!("declined")
    };
    assert_eq!(
        p.sql,
        "SELECT count(*) AS count FROM public.orders JOIN public.customers ON customers.customer_id = orders.customer_id \
         WHERE customers.city = 'London'"
    );
    assert_eq!(p.tables, vec!["public.orders".to_string(), "public.customers".to_string()]);
    let rs = ResultSet { columns: vec![], rows: vec![vec![json!(7)]], truncated: false, private: vec![] };
    assert_eq!(render_answer(&p, &rs).0, "There are 7 orders where customer city is London.");
    // A related table named with no role in the question.
    assert!(joined_declines(&catalog, "how many orders from customers"));
}

#[test]
fn money_words_sum_the_one_amount_reached() {
    let catalog = joined_shop();
    assert_eq!(
        joined_sql(&catalog, "top 3 customers by revenue"),
        "SELECT customers.full_name, sum(payments.amount) AS total_amount FROM public.payments \
         JOIN public.orders ON orders.order_id = payments.order_id \
         JOIN public.customers ON customers.customer_id = orders.customer_id \
         GROUP BY customers.full_name, customers.customer_id \
         ORDER BY total_amount DESC NULLS LAST, customers.full_name, customers.customer_id LIMIT 3"
    );
    assert_eq!(
        joined_sql(&catalog, "sales per payment method"),
        "SELECT method, sum(amount) AS total_amount FROM public.payments GROUP BY method ORDER BY total_amount DESC NULLS LAST, method"
    );
    // A second amount column the question could reach: which one is revenue is unclear.
    let mut two_amounts = joined_shop();
    two_amounts.tables[3].columns.push(col("total_amount", "numeric", 'N'));
    assert!(joined_declines(&two_amounts, "top 3 customers by revenue"));
    // No amount column at all: nothing is invented.
    let mut none = joined_shop();
    none.tables.remove(4);
    assert!(joined_declines(&none, "revenue per customer"));
}

#[test]
fn ratios_of_two_counts() {
    let catalog = joined_shop();
    assert_eq!(
        joined_sql(&catalog, "ratio of cancelled to delivered orders"),
        "SELECT count(*) FILTER (WHERE status = 'cancelled')::numeric / NULLIF(count(*) FILTER (WHERE status = 'delivered'), 0) AS ratio FROM public.orders"
    );
    assert_eq!(
        joined_sql(&catalog, "what share of customers are business?"),
        "SELECT count(*) FILTER (WHERE segment = 'business')::numeric / NULLIF(count(*), 0) AS ratio FROM public.customers"
    );
    assert_eq!(
        joined_sql(&catalog, "percentage of cancelled orders in 2024"),
        "SELECT 100.0 * count(*) FILTER (WHERE status = 'cancelled')::numeric / NULLIF(count(*), 0) AS ratio FROM public.orders \
         WHERE ordered_at >= DATE '2024-01-01' AND ordered_at < DATE '2025-01-01'"
    );
    assert!(joined_declines(&catalog, "ratio of orders to customers"));
    assert!(joined_declines(&catalog, "what share of customers in London are business"));
}

#[test]
fn ambiguous_joins_decline() {
    // Two foreign keys from shipments to addresses: which address is meant is unclear.
    let addresses =
        keyed("addresses", "address_id", vec![col("address_id", "integer", 'N'), col("city", "text", 'S')], vec![]);
    let shipments = keyed(
        "shipments",
        "shipment_id",
        vec![
            col("shipment_id", "integer", 'N'),
            col("from_address_id", "integer", 'N'),
            col("to_address_id", "integer", 'N'),
            col("weight", "real", 'N'),
        ],
        vec![fk("from_address_id", "addresses", "address_id"), fk("to_address_id", "addresses", "address_id")],
    );
    let catalog = Catalog { tables: vec![addresses, shipments] };
    assert!(joined_declines(&catalog, "number of shipments per city"));
    assert!(joined_declines(&catalog, "average weight of shipments by address"));

    // Reviews reach customers directly and through orders: the shorter path wins.
    let mut catalog = joined_shop();
    catalog.tables[5].columns.push(col("order_id", "integer", 'N'));
    catalog.tables[5].foreign_keys.push(fk("order_id", "orders", "order_id"));
    let sql = joined_sql(&catalog, "average rating by customer");
    assert!(
        sql.contains(
            "FROM public.reviews JOIN public.customers ON customers.customer_id = reviews.customer_id GROUP BY"
        ),
        "{sql}"
    );
    // Without the direct key, two routes of the same length (through orders, through products).
    catalog.tables[5].foreign_keys.retain(|k| k.ref_table != "customers");
    catalog.tables[5].columns[2].name = "written_by".into();
    catalog.tables[1].columns.push(col("maker_id", "integer", 'N'));
    catalog.tables[1].foreign_keys.push(fk("maker_id", "customers", "customer_id"));
    assert!(joined_declines(&catalog, "average rating by customer"));
}

#[test]
fn sums_over_a_joined_table_decline() {
    // Summing a referenced table's column once per referencing row would over-count.
    let mut catalog = joined_shop();
    catalog.tables[1].columns.push(col("unit_price", "numeric", 'N'));
    assert!(joined_declines(&catalog, "total unit price by customer"));
}

#[test]
fn suggestions_never_group_by_unique_or_free_text_columns() {
    let mut customers = keyed(
        "customers",
        "customer_id",
        vec![
            col("customer_id", "integer", 'N'),
            col("full_name", "text", 'S'),
            col("email", "text", 'S'),
            col("phone_number", "text", 'S'),
            col("sku", "text", 'S'),
            col("segment", "customer_segment", 'E'),
        ],
        vec![],
    );
    customers.columns[4].unique = true;
    let catalog = Catalog { tables: vec![customers] };
    let Decision::Answer(p) = plan(&catalog, "how many customers are there?", &mut shop_probe()) else { panic!() };
    let all = p.template.suggestions.join(" | ");
    assert!(all.contains("per segment"), "{all}");
    for never in ["email", "phone", "sku", "full name", "customer id"] {
        assert!(!all.contains(never), "{all}");
    }
}

#[test]
fn joins_follow_naming_conventions_when_no_keys_are_declared() {
    let plain = |name: &str, columns: Vec<Column>| table(name, columns);
    let customers = plain(
        "sbcustomer",
        vec![col("sbcustid", "text", 'S'), col("sbcustname", "text", 'S'), col("sbcustcountry", "text", 'S')],
    );
    let mut customers = customers;
    customers.primary_key = vec!["sbcustid".into()];
    let mut trades = plain(
        "sbtransaction",
        vec![col("sbtxid", "text", 'S'), col("sbtxcustid", "text", 'S'), col("sbtxamount", "numeric", 'N')],
    );
    trades.primary_key = vec!["sbtxid".into()];
    let tickers = plain("sbticker", vec![col("sbtickerid", "text", 'S'), col("sbtickersymbol", "text", 'S')]);
    let catalog = Catalog { tables: vec![customers, trades, tickers] };
    assert_eq!(
        joined_sql(&catalog, "number of transactions per customer country"),
        "SELECT sbcustomer.sbcustcountry, count(*) AS count FROM public.sbtransaction \
         JOIN public.sbcustomer ON sbcustomer.sbcustid = sbtransaction.sbtxcustid \
         GROUP BY sbcustomer.sbcustcountry ORDER BY count DESC NULLS LAST, sbcustomer.sbcustcountry"
    );
    // A link table whose columns are all keys is never joined onto: its "key" is not unique.
    let mut author = plain("author", vec![col("aid", "bigint", 'N'), col("name", "text", 'S')]);
    author.primary_key = vec!["aid".into()];
    let mut paper =
        plain("paper", vec![col("pid", "bigint", 'N'), col("title", "text", 'S'), col("year", "bigint", 'N')]);
    paper.primary_key = vec!["pid".into()];
    let paper_author = plain("paper_keyword", vec![col("pid", "bigint", 'N'), col("kid", "bigint", 'N')]);
    let writes = plain("writes", vec![col("aid", "bigint", 'N'), col("pid", "bigint", 'N')]);
    let catalog = Catalog { tables: vec![author, paper, paper_author, writes] };
    let links = joins::Links::new(&View::new(&catalog, None));
    assert!(links.single_hop(3, 0).is_some(), "writes.aid -> author.aid");
    assert!(links.single_hop(3, 1).is_some(), "writes.pid -> paper.pid");
    assert!(links.single_hop(3, 2).is_none(), "never onto a link table");
    // A key only named like one is not trusted for a column merely named alike.
    let mut catalog = catalog;
    catalog.tables[0].primary_key.clear();
    let links = joins::Links::new(&View::new(&catalog, None));
    assert!(links.single_hop(3, 0).is_none(), "aid onto an undeclared author key");
}

#[test]
fn rows_nothing_refers_to() {
    let mut catalog = joined_shop();
    catalog.tables[3].columns[1].comment = Some("Customer who placed the order".into());
    assert_eq!(
        joined_sql(&catalog, "Which customers have never placed an order?"),
        "SELECT full_name, customer_id FROM public.customers WHERE NOT EXISTS \
         (SELECT FROM public.orders AS never_row WHERE never_row.customer_id = customers.customer_id) \
         ORDER BY full_name, customer_id"
    );
    assert!(joined_sql(&catalog, "products without reviews").contains("NOT EXISTS (SELECT FROM public.reviews"));
    // A negation the engine cannot place is never dropped.
    assert!(joined_declines(&catalog, "Which orders were not cancelled?"));
    assert!(joined_declines(&catalog, "customers who have not been to London"));
}

#[test]
fn groups_kept_by_their_row_count() {
    let sql = joined_sql(
        &joined_shop(),
        "Which products have the lowest average rating among those with at least 10 reviews?",
    );
    assert!(sql.contains("GROUP BY products.name, products.product_id HAVING count(*) >= 10"), "{sql}");
    assert!(sql.contains("ORDER BY average_rating ASC"), "{sql}");
}

#[test]
fn years_compared_are_one_group_each() {
    let mut p = restaurants_probe();
    assert_eq!(
        sql_of("compare the total amount of orders in 2023 and 2024", &mut p),
        "SELECT date_trunc('year', created_at)::date AS year, sum(amount) AS total_amount FROM public.orders \
         WHERE created_at >= DATE '2023-01-01' AND created_at < DATE '2025-01-01' GROUP BY year ORDER BY year"
    );
    assert!(
        sql_of("number of orders in 2020 vs 2024", &mut p).contains("extract(year FROM created_at) IN (2020, 2024)")
    );
}

#[test]
fn superlative_adjectives_name_their_column() {
    let mut catalog = joined_shop();
    catalog.tables[1].columns.push(col("unit_price", "numeric", 'N'));
    assert_eq!(
        joined_sql(&catalog, "What is the most expensive product?"),
        "SELECT name, product_id, unit_price FROM public.products ORDER BY unit_price DESC NULLS LAST, name, product_id LIMIT 1"
    );
    catalog.tables[1].columns.push(col("added_on", "date", 'D'));
    assert!(joined_sql(&catalog, "the newest product").contains("ORDER BY added_on DESC NULLS LAST"));
}

#[test]
fn the_date_a_question_means() {
    let mut catalog = joined_shop();
    catalog.tables[3]
        .columns
        .push(Column { comment: Some("When the parcel left".into()), ..col("shipped_at", "date", 'D') });
    catalog.tables[3].columns[3].comment = Some("When the order was placed".into());
    // The verb of the question, the table's own event, or nothing clear.
    assert!(
        joined_sql(&catalog, "How many orders were placed in 2024?").contains("WHERE ordered_at >= DATE '2024-01-01'")
    );
    assert!(joined_sql(&catalog, "orders per month in 2024").contains("date_trunc('month', ordered_at)"));
    assert!(joined_sql(&catalog, "How many orders were shipped in 2024?").contains("shipped_at >= DATE '2024-01-01'"));
}

#[test]
fn revenue_of_order_lines_is_price_times_quantity() {
    let mut catalog = joined_shop();
    let items = keyed(
        "order_items",
        "order_item_id",
        vec![
            col("order_item_id", "integer", 'N'),
            col("order_id", "integer", 'N'),
            col("product_id", "integer", 'N'),
            col("quantity", "integer", 'N'),
            col("unit_price", "numeric(10,2)", 'N'),
        ],
        vec![fk("order_id", "orders", "order_id"), fk("product_id", "products", "product_id")],
    );
    catalog.tables.push(items);
    // The stored amount wherever it reaches; the value of order lines where only they reach.
    assert!(joined_sql(&catalog, "revenue per payment method").contains("sum(amount)"));
    assert_eq!(
        joined_sql(&catalog, "top 3 categories by revenue in 2024"),
        "SELECT categories.name, sum(order_items.unit_price * order_items.quantity) AS total_value \
         FROM public.order_items JOIN public.products ON products.product_id = order_items.product_id \
         JOIN public.categories ON categories.category_id = products.category_id \
         JOIN public.orders ON orders.order_id = order_items.order_id \
         WHERE orders.ordered_at >= DATE '2024-01-01' AND orders.ordered_at < DATE '2025-01-01' \
         GROUP BY categories.name, categories.category_id \
         ORDER BY total_value DESC NULLS LAST, categories.name, categories.category_id LIMIT 3"
    );
}
