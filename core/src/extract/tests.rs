//! Extraction over the envelopes models write; figures over the public eval sets are in
//! core/tests/reply_figures.rs.

use super::*;

fn extract(reply: &str) -> Extracted {
    extract_sql(reply, &mut || {})
}

fn several(reply: &str) -> String {
    match extract(reply) {
        Extracted::Several(s) => s,
        other => panic!("expected several statements from {reply:?}, got {other:?}"),
    }
}

fn sql(reply: &str) -> String {
    match extract(reply) {
        Extracted::Sql(s) => s,
        other => panic!("expected SQL from {reply:?}, got {other:?}"),
    }
}

fn refusal(reply: &str) -> String {
    match extract(reply) {
        Extracted::Refusal(s) => s,
        other => panic!("expected a refusal from {reply:?}, got {other:?}"),
    }
}

#[test]
fn plain_statement_loses_its_semicolon() {
    assert_eq!(sql("SELECT 1;"), "SELECT 1");
    assert_eq!(sql("  select count(*) from orders ;  \n"), "select count(*) from orders");
    assert_eq!(sql("WITH t AS (SELECT 1) SELECT * FROM t"), "WITH t AS (SELECT 1) SELECT * FROM t");
    assert_eq!(sql("VALUES (1), (2);"), "VALUES (1), (2)");
    assert_eq!(sql("TABLE orders;"), "TABLE orders");
    assert_eq!(sql("(SELECT 1) UNION (SELECT 2)"), "(SELECT 1) UNION (SELECT 2)");
}

#[test]
fn sql_fence_with_prose_around() {
    let reply = "Here is the query:\n\n```sql\nSELECT name\nFROM customers;\n```\n\nIt lists every customer.";
    assert_eq!(sql(reply), "SELECT name\nFROM customers");
}

#[test]
fn unlabelled_and_other_fences() {
    assert_eq!(sql("```\nSELECT 1\n```"), "SELECT 1");
    assert_eq!(sql("~~~postgresql\nSELECT 2\n~~~"), "SELECT 2");
    assert_eq!(sql("```sql SELECT 3```"), "SELECT 3");
    assert_eq!(sql("```sql\nSELECT 4"), "SELECT 4", "a fence left open runs to the end");
}

#[test]
fn several_fences_take_the_query() {
    let reply = "The tables:\n```text\ncustomers(id, name)\n```\nThe query:\n```sql\n-- top customers\nSELECT id FROM customers\n```\nAlternative:\n```sql\nSELECT 2\n```";
    assert_eq!(sql(reply), "SELECT id FROM customers");
    let reply = "```python\ncur.execute(\"SELECT 1\")\n```\n```sql\nSELECT 5\n```";
    assert_eq!(sql(reply), "SELECT 5");
}

#[test]
fn prose_before_and_after_without_fences() {
    let reply = "To find this, we count the orders.\n\nSELECT count(*)\nFROM orders\n\nThis query counts all orders.";
    assert_eq!(sql(reply), "SELECT count(*)\nFROM orders");
    let reply = "SELECT a FROM t\nExplanation: it reads t.";
    assert_eq!(sql(reply), "SELECT a FROM t");
    let reply = "SELECT a\nFROM t\n\nNote:\nthe column a is text.";
    assert_eq!(sql(reply), "SELECT a\nFROM t");
}

#[test]
fn stray_closing_fence_after_the_statement() {
    let reply = " SELECT sum(x)\nFROM t;\n```\n\nThis query calculates the sum of x in t.\n```";
    assert_eq!(sql(reply), "SELECT sum(x)\nFROM t");
    assert_eq!(sql(" SELECT 1\nFROM t;\n```"), "SELECT 1\nFROM t");
}

#[test]
fn labels_before_the_query() {
    assert_eq!(sql("SQL: SELECT 1"), "SELECT 1");
    assert_eq!(sql("**SQL Query:** SELECT 1;"), "SELECT 1");
    assert_eq!(sql("sql\nSELECT 1"), "SELECT 1");
    assert_eq!(sql("The query is `SELECT count(*) FROM t`."), "SELECT count(*) FROM t");
}

#[test]
fn one_statement_with_literals_and_comments_holding_semicolons() {
    assert_eq!(sql("SELECT 'a;b' AS x;"), "SELECT 'a;b' AS x");
    assert_eq!(sql("SELECT \"odd;name\" FROM t;"), "SELECT \"odd;name\" FROM t");
    assert_eq!(sql("SELECT $$a;b$$, $q$c;'d$q$;"), "SELECT $$a;b$$, $q$c;'d$q$");
    assert_eq!(sql("SELECT 1 -- one; two\n+ 1;"), "SELECT 1 -- one; two\n+ 1");
    assert_eq!(sql("SELECT 1 /* a; /* nested; */ b; */ + 1;"), "SELECT 1 /* a; /* nested; */ b; */ + 1");
    assert_eq!(sql("SELECT E'it\\'s;' AS x;"), "SELECT E'it\\'s;' AS x");
    assert_eq!(sql("SELECT $1;"), "SELECT $1");
}

#[test]
fn several_statements_are_refused_whole() {
    assert_eq!(several("SELECT 1; SELECT 2;"), "SELECT 1;\nSELECT 2");
    assert_eq!(several("SELECT 'a;b' AS x; DROP TABLE t"), "SELECT 'a;b' AS x;\nDROP TABLE t");
    assert_eq!(several("SELECT 1;\ndelete from t;"), "SELECT 1;\ndelete from t");
    assert_eq!(several("```sql\nSELECT a FROM t;\n\nSELECT b FROM t;\n```"), "SELECT a FROM t;\nSELECT b FROM t");
    assert_eq!(several("SQL: SELECT 1; -- first\n(SELECT 2);"), "SELECT 1;\n(SELECT 2)");
    assert_eq!(several(r#"{"sql": "SELECT 1; UPDATE t SET x = 1"}"#), "SELECT 1;\nUPDATE t SET x = 1");
}

#[test]
fn what_follows_one_statement_is_not_another() {
    for reply in [
        "SELECT 1;",
        "SELECT 1; ;; -- done\n/* really */",
        "SELECT 1;\n\nThis query returns one.",
        "SELECT 1; This returns one.",
        "SELECT 1;\n```\nExplanation: one.",
        "SELECT 1;\nUpdate: the table is small.",
        "SELECT 1;\n**Note**: nothing else.",
    ] {
        assert_eq!(sql(reply), "SELECT 1", "{reply:?}");
    }
}

#[test]
fn comments_around_are_dropped() {
    assert_eq!(sql("-- total orders\nSELECT count(*) FROM orders -- all of them\n;"), "SELECT count(*) FROM orders");
    assert_eq!(sql("```sql\n/* the query */\nSELECT 1\n```"), "SELECT 1");
}

#[test]
fn markdown_escapes_are_undone() {
    assert_eq!(
        sql("SELECT customer\\_id, COUNT(\\*) FROM sales\\_1k GROUP BY 1"),
        "SELECT customer_id, COUNT(*) FROM sales_1k GROUP BY 1"
    );
    assert_eq!(sql("SELECT a\\_b FROM t WHERE c = 'x\\_y'"), "SELECT a_b FROM t WHERE c = 'x_y'");
    // Without markdown escaping elsewhere, a LIKE escape in a literal is left alone.
    assert_eq!(sql("SELECT a FROM t WHERE c LIKE 'x\\_%'"), "SELECT a FROM t WHERE c LIKE 'x\\_%'");
}

#[test]
fn unescaped_quotes_in_literals() {
    assert_eq!(
        sql("SELECT * FROM event WHERE name = 'Women\\'s Soccer';"),
        "SELECT * FROM event WHERE name = 'Women''s Soccer'"
    );
    assert_eq!(
        sql("SELECT id FROM people WHERE name = 'O'Brien' AND x = 'it''s';"),
        "SELECT id FROM people WHERE name = 'O''Brien' AND x = 'it''s'"
    );
    // A literal ending in a backslash is valid standard SQL and stays as written.
    assert_eq!(sql("SELECT 'C:\\' AS dir"), "SELECT 'C:\\' AS dir");
}

#[test]
fn backticks_become_double_quotes_when_safe() {
    assert_eq!(sql("SELECT `name`, `Order Date` FROM `shop`.`orders`"), "SELECT name, \"Order Date\" FROM shop.orders");
    assert_eq!(sql("SELECT `order` FROM `public.orders`"), "SELECT \"order\" FROM public.orders");
    assert_eq!(sql("SELECT '`x`' AS s"), "SELECT '`x`' AS s");
    assert_eq!(sql("SELECT `a FROM t"), "SELECT `a FROM t");
}

#[test]
fn sql_tags() {
    assert_eq!(sql("<sql>SELECT 1;</sql>"), "SELECT 1");
    assert_eq!(sql("Sure.\n<SQL>\nSELECT 2\n</SQL>\nDone."), "SELECT 2");
}

#[test]
fn json_replies() {
    assert_eq!(sql(r#"{"sql": "SELECT 1;"}"#), "SELECT 1");
    assert_eq!(
        sql("```json\n{\"query\": \"SELECT a\\nFROM t\", \"explanation\": \"reads t\"}\n```"),
        "SELECT a\nFROM t"
    );
    assert_eq!(sql(r#"Here you go: {"SQL": "```sql\nSELECT 3\n```"}"#), "SELECT 3");
    assert_eq!(refusal(r#"{"sql": null, "reason": "There is no salary column."}"#), "There is no salary column.");
    assert_eq!(refusal(r#"{"sql": "CANNOT_ANSWER: no such data"}"#), "no such data");
    assert_eq!(refusal(r#"{"answerable": false, "reason": "Ask about orders instead."}"#), "Ask about orders instead.");
    assert_eq!(sql("{\"sql\": \"SELECT 4\"}\nThis counts {things}."), "SELECT 4");
}

#[test]
fn json_inside_a_statement_is_its_data() {
    let reply = r#"SELECT id FROM t WHERE doc @> '{"sql": "SELECT 2"}'"#;
    assert_eq!(sql(reply), reply);
    let reply = "```sql\nSELECT '{\"query\": null}'::jsonb\n```";
    assert_eq!(sql(reply), "SELECT '{\"query\": null}'::jsonb");
}

/// The envelopes the fake gateway and the eval tooling wrap statements in.
fn envelopes(sql: &str) -> Vec<String> {
    vec![
        sql.to_string(),
        format!("{sql};"),
        format!("```sql\n{sql};\n```"),
        format!("```\n{sql}\n```"),
        format!("```postgresql\n{sql}\n```\nThis query should give you the result."),
        format!("Here is the SQL query that answers the question:\n\n```sql\n{sql};\n```\n\nIt reads t."),
        format!("SQL:\n```\n{sql}\n```"),
        format!("SQL: {sql};"),
        format!("**SQL Query:** {sql}"),
        format!("<sql>\n{sql}\n</sql>"),
        format!("<think>Which table? Maybe SELECT 1.</think>\n{sql}"),
        serde_json::json!({ "sql": sql }).to_string(),
        format!("```json\n{}\n```", serde_json::json!({ "query": sql, "explanation": "reads t" })),
        format!("To answer this, I join the tables.\n\n{sql};\n\nNote: dates are stored as text."),
    ]
    .into_iter()
    .chain((!sql.contains('\n')).then(|| format!("The query is `{sql}`.")))
    .collect()
}

#[test]
fn every_query_kind_in_every_envelope() {
    for query in [
        "SELECT a\\_b FROM t\\_1",
        "WITH high\\_value AS (SELECT id FROM orders\\_2024 WHERE total > 10) SELECT count(*) FROM high\\_value",
        "WITH\n  totals (region\\_id, n) AS (SELECT 1, 2)\nSELECT * FROM totals",
        "WITH RECURSIVE \"Tree\" AS (SELECT 1 AS n) SELECT n FROM \"Tree\"",
        "with t as (select 1) select * from t",
        "TABLE orders\\_2024",
        "VALUES (1, 'a'), (2, 'b')",
        "(SELECT 1) UNION (SELECT 2)",
        "((WITH t AS (SELECT 1) SELECT * FROM t))",
    ] {
        let expected = query.replace("\\_", "_");
        for reply in envelopes(query) {
            assert_eq!(extract(&reply), Extracted::Sql(expected.clone()), "{reply}");
        }
    }
}

#[test]
fn reasoning_blocks_are_ignored() {
    assert_eq!(sql("<think>Maybe SELECT 2? No.</think>\nSELECT 1"), "SELECT 1");
    assert_eq!(extract("<think>I am still thinking about SELECT"), Extracted::NoSql);
}

#[test]
fn non_queries_are_returned_for_the_validator() {
    assert_eq!(sql("```sql\nDELETE FROM orders;\n```"), "DELETE FROM orders");
    assert_eq!(sql("UPDATE orders SET x = 1"), "UPDATE orders SET x = 1");
}

#[test]
fn marker_is_a_refusal() {
    assert_eq!(refusal("CANNOT_ANSWER: the schema has no weather data"), "the schema has no weather data");
    assert_eq!(refusal("**CANNOT_ANSWER**: no prices are stored"), "no prices are stored");
    assert_eq!(refusal("I checked.\nCANNOT_ANSWER:\nThere is no table of planets."), "There is no table of planets.");
    assert_eq!(refusal("cannot_answer - not in schema\n```sql\nSELECT 1\n```"), "not in schema");
    assert_eq!(refusal("CANNOT_ANSWER"), "");
}

#[test]
fn refusal_phrasings() {
    for reply in [
        "I cannot answer this from the schema.",
        "The database does not contain information about art.",
        "Sorry, the provided tables have nothing about dark matter.",
        "I'm sorry, but this question is not related to the data.",
        "This question cannot be answered with the available tables because there is no population column.",
        "Unfortunately, there is no information about national animals in this database.",
    ] {
        assert_eq!(refusal(reply), reply);
    }
    let long = format!("Sorry, {}", "no data ".repeat(200));
    assert!(refusal(&long).chars().count() <= refusal::MAX_REASON_CHARS + 1);
    // Only the sentences that refuse are the reason.
    assert_eq!(refusal("**Sorry**,\n\nno   table  holds it."), "no table holds it.");
}

#[test]
fn prose_that_mentions_keywords_is_not_sql() {
    assert_eq!(extract("Select a different question, please; the tables hold only orders."), Extracted::NoSql);
    refusal("With this schema, there is no way to know the weather.");
    refusal("Update: the data has no prices.");
}

#[test]
fn prose_instead_of_sql_is_never_a_refusal() {
    for reply in [
        "Sure! The number of orders can be found by counting the rows of the orders table.",
        "There are 42 orders.",
        "The answer is 1,234 customers in Oslo.",
        "I don't have access to your database, so I can't tell you how many orders there are.",
        "To answer this, count the orders per customer and keep the largest.",
        r#"{"sql": "", "explanation": "The number of orders is 17."}"#,
        r#"{"query": null, "answer": "17 orders"}"#,
        r#"{"sql": "The orders table has 17 rows."}"#,
        r#"{"answerable": true, "sql": null}"#,
    ] {
        assert_eq!(extract(reply), Extracted::NoSql, "{reply}");
    }
}

#[test]
fn empty_replies() {
    assert_eq!(extract(""), Extracted::NoSql);
    assert_eq!(extract(" \n\t "), Extracted::NoSql);
    assert_eq!(extract("```\n```"), Extracted::NoSql);
    assert_eq!(extract(";"), Extracted::NoSql);
}

#[test]
fn odd_input_never_panics() {
    for reply in [
        "'",
        "\"",
        "$",
        "$$",
        "/*",
        "--",
        "`",
        "```",
        "(",
        "SELECT 'é",
        "SELECT $é$x$é$",
        "é\\",
        "{",
        "{}",
        "<sql>",
        "</sql>",
        "SELECT \\",
        "WITH",
        "WITH x",
        "WITH \"x",
        "TABLE",
        "CANNOT_ANSWEé",
    ] {
        let _ = extract(reply);
    }
}
