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
        "SELECT city_name, count FROM (SELECT city_name, count(*) AS count FROM public.restaurant GROUP BY city_name \
         ORDER BY count DESC NULLS LAST FETCH FIRST 1 ROWS WITH TIES) AS ranked ORDER BY count DESC NULLS LAST, city_name"
    );
    assert_eq!(
        sql_of("top 3 restaurants by rating", &mut p),
        "SELECT name, id, rating FROM (SELECT name, id, rating FROM public.restaurant \
         ORDER BY rating DESC NULLS LAST FETCH FIRST 3 ROWS WITH TIES) AS ranked ORDER BY rating DESC NULLS LAST, id, name"
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
        "SELECT name FROM public.restaurant WHERE rating > 4.5 ORDER BY name, id"
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
         ORDER BY average_rating DESC NULLS LAST, categories.category_id, categories.name"
    );
}

#[test]
fn ranks_the_rows_of_a_referenced_table() {
    assert_eq!(
        joined_sql(&joined_shop(), "top 5 customers by number of orders"),
        "SELECT full_name, count FROM (SELECT customers.full_name, customers.customer_id, count(*) AS count \
         FROM public.orders JOIN public.customers ON customers.customer_id = orders.customer_id \
         GROUP BY customers.full_name, customers.customer_id ORDER BY count DESC NULLS LAST FETCH FIRST 5 ROWS WITH TIES) \
         AS ranked ORDER BY count DESC NULLS LAST, customer_id, full_name"
    );
    assert!(joined_sql(&joined_shop(), "Which customer has the most orders?").contains("FETCH FIRST 1 ROWS WITH TIES"));
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
        "SELECT full_name, total_amount FROM (SELECT customers.full_name, customers.customer_id, \
         sum(payments.amount) AS total_amount FROM public.payments \
         JOIN public.orders ON orders.order_id = payments.order_id \
         JOIN public.customers ON customers.customer_id = orders.customer_id \
         GROUP BY customers.full_name, customers.customer_id \
         ORDER BY total_amount DESC NULLS LAST FETCH FIRST 3 ROWS WITH TIES) AS ranked \
         ORDER BY total_amount DESC NULLS LAST, customer_id, full_name"
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
        "SELECT name, product_id, unit_price FROM (SELECT name, product_id, unit_price FROM public.products \
         ORDER BY unit_price DESC NULLS LAST FETCH FIRST 1 ROWS WITH TIES) AS ranked \
         ORDER BY unit_price DESC NULLS LAST, product_id, name"
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
        "SELECT name, total_value FROM (SELECT categories.name, categories.category_id, \
         sum(order_items.unit_price * order_items.quantity) AS total_value \
         FROM public.order_items JOIN public.products ON products.product_id = order_items.product_id \
         JOIN public.categories ON categories.category_id = products.category_id \
         JOIN public.orders ON orders.order_id = order_items.order_id \
         WHERE orders.ordered_at >= DATE '2024-01-01' AND orders.ordered_at < DATE '2025-01-01' \
         GROUP BY categories.name, categories.category_id \
         ORDER BY total_value DESC NULLS LAST FETCH FIRST 3 ROWS WITH TIES) AS ranked \
         ORDER BY total_value DESC NULLS LAST, category_id, name"
    );
}

#[test]
fn ties_at_the_cut_are_kept_and_said() {
    let mut p = restaurants_probe();
    let Decision::Answer(one) = plan(&shop(), "Which city has the most restaurants?", &mut p) else { panic!() };
    assert!(one.sql.contains("FETCH FIRST 1 ROWS WITH TIES"), "{}", one.sql);
    let rs = |rows: Vec<Vec<serde_json::Value>>| ResultSet { columns: vec![], rows, truncated: false, private: vec![] };
    let three = rs(vec![vec![json!("Los Angeles"), json!(3)], vec![json!("New York"), json!(3)]]);
    assert_eq!(
        render_answer(&one, &three).0,
        "Los Angeles (3) and New York (3) tie for the highest number of restaurants."
    );
    assert_eq!(
        render_answer(&one, &rs(vec![vec![json!("Miami"), json!(4)]])).0,
        "The city name with the highest number of restaurants is Miami (4)."
    );
    let Decision::Answer(top) = plan(&shop(), "top 2 restaurants by rating", &mut p) else { panic!() };
    let rows = rs(vec![
        vec![json!("Pasta House"), json!(1), json!(4.7)],
        vec![json!("Sushi Bar"), json!(3), json!(4.5)],
        vec![json!("Taco Stand"), json!(7), json!(4.5)],
    ]);
    assert_eq!(
        render_answer(&top, &rows).0,
        "The top 2 restaurants by rating are: Pasta House (4.7), Sushi Bar (4.5), Taco Stand (4.5) \
         (2 tie for the last place, so 3 are listed)."
    );
}

#[test]
fn keys_asked_for_are_shown() {
    let catalog = joined_shop();
    let Decision::Answer(p) = plan(&catalog, "distinct customer ids of orders", &mut shop_probe()) else {
        panic!("declined")
    };
    let rs =
        ResultSet { columns: vec![], rows: vec![vec![json!(4)], vec![json!(9)]], truncated: false, private: vec![] };
    let answer = render_answer(&p, &rs).0;
    assert!(answer.ends_with(": 4, 9."), "{answer}");
}

/// The joined shop with order lines (price and quantity) referencing orders and products.
fn shop_with_lines() -> Catalog {
    let mut catalog = joined_shop();
    // At most one payment per order.
    catalog.tables[4].columns[1].unique = true;
    catalog.tables.push(keyed(
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
    ));
    catalog
}

#[test]
fn best_selling_ranks_by_units_sold() {
    let catalog = shop_with_lines();
    let three = joined_sql(&catalog, "What are the 3 best-selling products?");
    assert_eq!(
        three,
        "SELECT name, total_quantity FROM (SELECT products.name, products.product_id, \
         sum(order_items.quantity) AS total_quantity FROM public.order_items \
         JOIN public.products ON products.product_id = order_items.product_id \
         GROUP BY products.name, products.product_id ORDER BY total_quantity DESC NULLS LAST \
         FETCH FIRST 3 ROWS WITH TIES) AS ranked ORDER BY total_quantity DESC NULLS LAST, product_id, name"
    );
    assert_eq!(joined_sql(&catalog, "top 3 selling products"), three);
    assert_eq!(joined_sql(&catalog, "What are the 3 best-selling products by units sold?"), three);
    let one = joined_sql(&catalog, "Which product sold the most units?");
    assert!(one.contains("sum(order_items.quantity)") && one.contains("FETCH FIRST 1 ROWS"), "{one}");
    let worst = joined_sql(&catalog, "the worst-selling product category");
    assert!(worst.contains("JOIN public.categories") && worst.contains("total_quantity ASC"), "{worst}");
    assert_eq!(
        joined_sql(&catalog, "How many units were sold in 2024?"),
        "SELECT sum(order_items.quantity) AS total_quantity FROM public.order_items \
         JOIN public.orders ON orders.order_id = order_items.order_id \
         WHERE orders.ordered_at >= DATE '2024-01-01' AND orders.ordered_at < DATE '2025-01-01'"
    );
    let revenue = joined_sql(&catalog, "Which product category brought in the most revenue?");
    assert!(revenue.contains("sum(order_items.unit_price * order_items.quantity)"), "{revenue}");
    // Nothing holds units: nothing is invented; a verb of selling alone says nothing.
    assert!(joined_declines(&joined_shop(), "What are the 3 best-selling products?"));
    assert!(joined_declines(&catalog, "Which products were sold?"));
    assert!(joined_declines(&catalog, "Which category brought in the most orders?"));
}

#[test]
fn a_stored_table_is_preferred_to_a_view_of_it() {
    let mut catalog = shop_with_lines();
    let mut totals = table(
        "order_totals",
        vec![
            col("order_id", "integer", 'N'),
            col("ordered_at", "date", 'D'),
            col("units", "integer", 'N'),
            col("total", "numeric", 'N'),
        ],
    );
    totals.kind = crate::catalog::TableKind::View;
    catalog.tables.push(totals);
    let sql = joined_sql(&catalog, "How many units were sold in 2024?");
    assert!(sql.starts_with("SELECT sum(order_items.quantity)"), "{sql}");
    catalog.tables.last_mut().unwrap().kind = crate::catalog::TableKind::Table;
    assert!(joined_declines(&catalog, "How many units were sold in 2024?"));
}

#[test]
fn average_order_value_is_per_order() {
    let catalog = shop_with_lines();
    let value = "SELECT sum(unit_price * quantity)::numeric / NULLIF(count(DISTINCT order_id), 0) \
                 AS average_order_value FROM public.order_items";
    assert_eq!(joined_sql(&catalog, "What is the average order value?"), value);
    assert_eq!(joined_sql(&catalog, "average value of an order"), value);
    assert_eq!(joined_sql(&catalog, "What is the average revenue per order?"), value);
    let per_status = joined_sql(&catalog, "average order value per status in 2024");
    assert!(per_status.starts_with("SELECT orders.status, sum(order_items.unit_price"), "{per_status}");
    assert!(per_status.contains("WHERE orders.ordered_at >= DATE '2024-01-01'"), "{per_status}");
    let Decision::Answer(p) = plan(&catalog, "What is the average order value?", &mut shop_probe()) else { panic!() };
    let rs = ResultSet { columns: vec![], rows: vec![vec![json!(131.856)]], truncated: false, private: vec![] };
    assert_eq!(render_answer(&p, &rs).0, "For order items, the average value per order is 131.86.");
    // An order's own amount is its value.
    let mut own = joined_shop();
    own.tables[3].columns.push(col("total_amount", "numeric", 'N'));
    assert_eq!(
        joined_sql(&own, "What is the average order value?"),
        "SELECT avg(total_amount) AS average_total_amount FROM public.orders"
    );
    // One payment per order is not a part of it; two kinds of parts leave the value unclear.
    let mut payments_only = joined_shop();
    payments_only.tables[4].columns[1].unique = true;
    assert!(joined_declines(&payments_only, "What is the average order value?"));
    let mut two = shop_with_lines();
    two.tables[4].columns[1].unique = false;
    assert!(joined_declines(&two, "What is the average order value?"));
}

#[test]
fn time_between_two_dates() {
    let mut catalog = joined_shop();
    let orders = &mut catalog.tables[3];
    orders.columns[3].data_type = "timestamp with time zone".into();
    orders.columns.push(col("shipped_at", "timestamp with time zone", 'D'));
    orders.columns.push(col("delivered_at", "timestamp with time zone", 'D'));
    let days = "SELECT avg(extract(epoch FROM shipped_at - ordered_at) / 86400) AS average_days FROM public.orders";
    assert_eq!(joined_sql(&catalog, "What is the average number of days between order and shipment?"), days);
    assert_eq!(joined_sql(&catalog, "average days from ordering to shipping"), days);
    assert_eq!(joined_sql(&catalog, "How long does shipping take on average?"), days);
    assert_eq!(
        joined_sql(&catalog, "average hours between shipment and delivery for business customers"),
        "SELECT avg(extract(epoch FROM orders.delivered_at - orders.shipped_at) / 3600) AS average_hours \
         FROM public.orders JOIN public.customers ON customers.customer_id = orders.customer_id \
         WHERE customers.segment = 'business'"
    );
    let per_status = joined_sql(&catalog, "longest time between order and delivery per status");
    assert!(
        per_status.contains("max(extract(epoch FROM delivered_at - ordered_at) / 86400) AS max_days"),
        "{per_status}"
    );
    let Decision::Answer(p) = plan(&catalog, "average days between order and shipment", &mut shop_probe()) else {
        panic!()
    };
    let rs = ResultSet { columns: vec![], rows: vec![vec![json!(1.298)]], truncated: false, private: vec![] };
    assert_eq!(
        render_answer(&p, &rs).0,
        "For orders, the average number of days from ordered at to shipped at is 1.3."
    );
    // Dates: whole days.
    catalog.tables[3].columns[3].data_type = "date".into();
    catalog.tables[3].columns[4].data_type = "date".into();
    assert!(joined_sql(&catalog, "average days between order and shipment").contains("avg((shipped_at - ordered_at))"));
    // An event no date column records, a sum of times, or times without an average are not read.
    assert!(joined_declines(&catalog, "average days between order and payment"));
    assert!(joined_declines(&catalog, "total days between order and shipment"));
    assert!(joined_declines(&catalog, "How long does shipping take?"));
}

#[test]
fn events_states_and_values() {
    let mut catalog = joined_shop();
    catalog.tables[3].columns.push(col("shipped_at", "date", 'D'));
    catalog.tables[3].columns[3].comment = Some("When the order was placed".into());
    let probe =
        || FakeProbe::new(&[("status", "shipped"), ("city", "London"), ("city", "Paris"), ("segment", "business")]);
    let sql = |q: &str, p: &mut FakeProbe| match plan(&catalog, q, p) {
        Decision::Answer(plan) => plan.sql,
        Decision::Decline(r) => panic!("declined {q:?}: {r}"),
    };
    // "were shipped in 2025": when they were shipped, whatever their status now.
    assert_eq!(
        sql("How many orders were shipped in 2025?", &mut probe()),
        "SELECT count(*) AS count FROM public.orders WHERE shipped_at >= DATE '2025-01-01' AND shipped_at < DATE '2026-01-01'"
    );
    // "shipped orders": orders whose status is shipped.
    assert!(sql("How many shipped orders are there?", &mut probe()).contains("status = 'shipped'"));
    // The plain verb after "did" names the event too.
    assert!(sql("How many orders did business customers place in 2024?", &mut probe())
        .contains("customers.segment = 'business' AND orders.ordered_at >= DATE '2024-01-01'"));
    // Two values of one column never both hold.
    let Decision::Decline(why) = plan(&catalog, "How many customers are in Paris and London?", &mut probe()) else {
        panic!("answered")
    };
    assert!(why.to_string().contains("\"Paris\" and \"London\" are both values of city"), "{why}");
}

#[test]
fn most_common_values_and_highest_rated_rows() {
    let catalog = joined_shop();
    assert_eq!(
        joined_sql(&catalog, "What is the most common payment method?"),
        "SELECT method, count FROM (SELECT method, count(*) AS count FROM public.payments GROUP BY method \
         ORDER BY count DESC NULLS LAST FETCH FIRST 1 ROWS WITH TIES) AS ranked ORDER BY count DESC NULLS LAST, method"
    );
    assert!(joined_sql(&catalog, "the least common order statuses").ends_with("ORDER BY count ASC, status"));
    assert!(joined_sql(&catalog, "What is the most common status of orders?").contains("FETCH FIRST 1 ROWS"));
    // A table's rows are popular among what, is unclear.
    assert!(joined_declines(&catalog, "What is the most popular product?"));
    assert_eq!(
        joined_sql(&catalog, "What is the highest rated product?"),
        "SELECT name, average_rating FROM (SELECT products.name, products.product_id, avg(reviews.rating) AS average_rating \
         FROM public.reviews JOIN public.products ON products.product_id = reviews.product_id \
         GROUP BY products.name, products.product_id ORDER BY average_rating DESC NULLS LAST FETCH FIRST 1 ROWS WITH TIES) \
         AS ranked ORDER BY average_rating DESC NULLS LAST, product_id, name"
    );
    assert!(joined_sql(&catalog, "the 3 lowest rated products").contains("ORDER BY average_rating ASC FETCH FIRST 3"));
}

#[test]
fn ranges_of_days_and_notes_that_they_include_their_ends() {
    let mut p = restaurants_probe();
    let range = "SELECT count(*) AS count FROM public.orders WHERE created_at >= DATE '2023-01-01' \
                 AND created_at < DATE '2023-03-31' + 1";
    assert_eq!(sql_of("How many orders between Jan 1, 2023 and Mar 31, 2023?", &mut p), range);
    assert_eq!(
        sql_of("How many orders from 2023-01-01 to 2023-03-31 (inclusive of start and end dates)?", &mut p),
        range
    );
    assert!(sql_of("total amount of orders in the past 30 days, inclusive of 30 days ago", &mut p)
        .ends_with("WHERE created_at >= CURRENT_DATE - INTERVAL '30 day'"));
    assert!(declines("total amount of orders in the past 30 days, inclusive of 7 days ago"));
    assert!(declines("total amount of orders in the past 30 days, exclusive of today"));
}

#[test]
fn counting_a_joined_tables_rows_counts_each_once() {
    let mut catalog = joined_shop();
    catalog.tables[3].columns[1].comment = Some("Customer who placed the order".into());
    assert_eq!(
        joined_sql(&catalog, "How many customers placed orders per status?"),
        "SELECT orders.status, count(DISTINCT customers.customer_id) AS customer_count FROM public.orders \
         JOIN public.customers ON customers.customer_id = orders.customer_id GROUP BY orders.status \
         ORDER BY customer_count DESC NULLS LAST, orders.status"
    );
}

#[test]
fn details_of_the_ranked_rows_are_theirs() {
    let mut catalog = joined_shop();
    catalog.tables[3].columns[1].comment = Some("Customer who placed the order".into());
    let sql = joined_sql(&catalog, "Which customer placed the most orders? Return the id, city and number of orders.");
    assert_eq!(
        sql,
        "SELECT full_name, customer_id, city, count FROM (SELECT customers.full_name, customers.customer_id, \
         customers.city, count(*) AS count FROM public.orders \
         JOIN public.customers ON customers.customer_id = orders.customer_id \
         GROUP BY customers.full_name, customers.customer_id, customers.city \
         ORDER BY count DESC NULLS LAST FETCH FIRST 1 ROWS WITH TIES) AS ranked \
         ORDER BY count DESC NULLS LAST, customer_id, full_name, city"
    );
    let Decision::Answer(p) =
        plan(&catalog, "Which customer placed the most orders? Return the id.", &mut shop_probe())
    else {
        panic!()
    };
    let rs = ResultSet {
        columns: vec![],
        rows: vec![vec![json!("Ann"), json!(7), json!(12)]],
        truncated: false,
        private: vec![],
    };
    assert_eq!(render_answer(&p, &rs).0, "The customer with the highest number of orders is Ann / 7 (12).");
}

#[test]
fn quarters_months_and_combinations() {
    let mut p = restaurants_probe();
    let q1 = "SELECT count(*) AS count FROM public.orders WHERE created_at >= DATE '2023-01-01' \
              AND created_at < DATE '2023-04-01'";
    assert_eq!(sql_of("How many orders in the first quarter of 2023?", &mut p), q1);
    assert_eq!(sql_of("How many orders in Q1 2023?", &mut p), q1);
    assert!(sql_of("How many orders in the 4th quarter of 2023?", &mut p)
        .ends_with("created_at >= DATE '2023-10-01' AND created_at < DATE '2024-01-01'"));
    assert!(sql_of("total amount of orders in March 2024", &mut p)
        .ends_with("created_at >= DATE '2024-03-01' AND created_at < DATE '2024-04-01'"));
    assert!(declines("How many orders in March?"));
    let pairs = sql_of("top 3 combinations of city and food type by number of restaurants", &mut p);
    assert!(pairs.contains("GROUP BY city_name, food_type") && pairs.contains("FETCH FIRST 3 ROWS"), "{pairs}");
}

#[test]
fn either_values_anything_but_a_value_and_rows_referred_to() {
    let mut catalog = joined_shop();
    catalog.tables[3].columns[1].comment = Some("Customer who placed the order".into());
    let probe = || FakeProbe::new(&[("city", "London"), ("city", "Paris"), ("city", "Oslo"), ("status", "cancelled")]);
    let sql = |q: &str| match plan(&catalog, q, &mut probe()) {
        Decision::Answer(plan) => plan.sql,
        Decision::Decline(r) => panic!("declined {q:?}: {r}"),
    };
    let declines = |q: &str| matches!(plan(&catalog, q, &mut probe()), Decision::Decline(_));
    assert_eq!(
        sql("How many customers are in Paris or London?"),
        "SELECT count(*) AS count FROM public.customers WHERE city IN ('Paris', 'London')"
    );
    assert!(sql("How many customers are in Paris, Oslo or London?").ends_with("city IN ('Paris', 'Oslo', 'London')"));
    assert!(declines("How many customers are in Paris, Oslo and London?"));
    assert!(declines("How many customers are in Paris London?"));
    assert_eq!(
        sql("How many orders were not cancelled?"),
        "SELECT count(*) AS count FROM public.orders WHERE status IS DISTINCT FROM 'cancelled'"
    );
    assert!(sql("number of orders with a status other than cancelled").ends_with("status IS DISTINCT FROM 'cancelled'"));
    assert!(sql("How many customers are not in London?").ends_with("city IS DISTINCT FROM 'London'"));
    assert!(sql("number of orders per status except cancelled")
        .contains("WHERE status IS DISTINCT FROM 'cancelled' GROUP BY status"));
    assert_eq!(
        sql("Which customers placed orders in 2024?"),
        "SELECT DISTINCT customers.full_name, customers.customer_id FROM public.orders \
         JOIN public.customers ON customers.customer_id = orders.customer_id \
         WHERE orders.ordered_at >= DATE '2024-01-01' AND orders.ordered_at < DATE '2025-01-01' \
         ORDER BY customers.full_name, customers.customer_id"
    );
    let Decision::Answer(p) = plan(&catalog, "Which customers placed orders in 2024?", &mut probe()) else { panic!() };
    let rs = ResultSet { columns: vec![], rows: vec![vec![json!("Ann"), json!(1)]], truncated: false, private: vec![] };
    assert_eq!(render_answer(&p, &rs).0, "Found 1 customer where ordered at in 2024: Ann.");
}
