-- The built-in offline engine: answers with no LLM, declines what it cannot answer with confidence.
CREATE EXTENSION sqlchat;
SET sqlchat.engine = 'offline';
CREATE SCHEMA store;
CREATE TABLE store.customers (id int PRIMARY KEY, name text NOT NULL, city text NOT NULL);
COMMENT ON COLUMN store.customers.name IS 'Full name';
CREATE TABLE store.orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES store.customers(id),
    amount numeric(10,2) NOT NULL,
    status text NOT NULL,
    ordered_at date NOT NULL
);
COMMENT ON COLUMN store.orders.amount IS 'Order total in EUR';
COMMENT ON COLUMN store.orders.customer_id IS 'Customer who placed the order';
INSERT INTO store.customers VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome'), (3, 'Cy', 'Oslo'), (4, 'Di', 'Lima'), (5, 'Ed', 'Rome');
INSERT INTO store.orders VALUES
  (1, 1, 10.00, 'paid', '2024-01-05'), (2, 1, 20.00, 'paid', '2024-02-10'), (3, 2, 5.50, 'cancelled', '2024-02-11'),
  (4, 3, 42.00, 'paid', '2024-03-01'), (5, 4, 7.25, 'paid', '2023-12-30'), (6, 3, 1.00, 'cancelled', '2024-03-02');

SELECT answer, sql, rows, engine, llm_calls FROM sqlchat.ask_full('How many customers are there?');
SELECT answer, rows FROM sqlchat.ask_full('How many customers are in Oslo?');
SELECT answer, rows FROM sqlchat.ask_full('How many orders were cancelled?');
SELECT answer, rows FROM sqlchat.ask_full('Which city has the most customers?');
SELECT rows FROM sqlchat.ask_full('total amount of orders per status');
SELECT rows FROM sqlchat.ask_full('number of orders per month in 2024');
SELECT rows FROM sqlchat.ask_full('top 2 customers by total order amount');
SELECT answer, rows FROM sqlchat.ask_full('Which customers have never placed an order?');
SELECT answer, rows FROM sqlchat.ask_full('How many orders were placed in 2024?');
SELECT answer, rows FROM sqlchat.ask_full('Compare the total amount of orders in 2023 and 2024');
-- A short follow-up in a session is read against the previous question.
SELECT answer FROM sqlchat.ask_full('How many orders were placed in 2024?', 'regress-offline');
SELECT answer, sql FROM sqlchat.ask_full('and in 2023?', 'regress-offline');
-- A follow-up of a follow-up.
SELECT answer FROM sqlchat.ask_full('and in 2022?', 'regress-offline');
SELECT sqlchat.forget('regress-offline');
-- Rows that tie with the last one asked for are kept; the most common value of a column.
SELECT answer, rows FROM sqlchat.ask_full('top 2 cities by number of customers');
SELECT answer, rows FROM sqlchat.ask_full('What is the most common status of orders?');
-- An order is worth its own amount; units sold are summed from its lines.
CREATE TABLE store.order_lines (
    id int PRIMARY KEY,
    order_id int NOT NULL REFERENCES store.orders(id),
    quantity int NOT NULL,
    unit_price numeric(10,2) NOT NULL
);
INSERT INTO store.order_lines VALUES (1, 1, 2, 5.00), (2, 2, 1, 20.00), (3, 4, 3, 10.00), (4, 4, 1, 12.00), (5, 5, 1, 7.25);
SELECT answer, sql, rows FROM sqlchat.ask_full('What is the average order value?');
SELECT answer, rows FROM sqlchat.ask_full('How many units were sold in 2024?');
-- Declines say why; only those about the data point to an LLM gateway.
SELECT answer, sql IS NULL AS nothing_ran FROM sqlchat.ask_full('Why do customers in Rome cancel more often?');
SELECT answer, sql IS NULL AS nothing_ran FROM sqlchat.ask_full('What is the weather in Berlin?');
SELECT sqlchat.generate_sql('How many customers are there?');
DROP SCHEMA store CASCADE;
DROP EXTENSION sqlchat;
