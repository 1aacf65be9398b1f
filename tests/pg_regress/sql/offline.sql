-- The built-in offline engine: answers with no LLM, declines what it cannot answer with confidence.
CREATE EXTENSION sqlchat;
SET sqlchat.engine = 'offline';
CREATE SCHEMA store;
CREATE TABLE store.customers (id int PRIMARY KEY, name text NOT NULL, city text NOT NULL);
CREATE TABLE store.orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES store.customers(id),
    amount numeric(10,2) NOT NULL,
    status text NOT NULL,
    ordered_at date NOT NULL
);
COMMENT ON COLUMN store.orders.amount IS 'Order total in EUR';
INSERT INTO store.customers VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome'), (3, 'Cy', 'Oslo'), (4, 'Di', 'Lima');
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
-- Declines, with an answer that says an LLM gateway is needed.
SELECT answer, sql IS NULL AS nothing_ran FROM sqlchat.ask_full('Why do customers in Rome cancel more often?');
SELECT sqlchat.generate_sql('How many customers are there?');
DROP SCHEMA store CASCADE;
DROP EXTENSION sqlchat;
