#!/usr/bin/env python3
"""What teaching costs an ask: ask_full's elapsed_ms (median of 100) on a shop database with the fake
gateway answering at once, with nothing taught, with 200 examples, 50 definitions and a private
column, and for a taught question asked again (verified). Prints the figures; never fails on them.

    python3 tools/bench_teach.py
"""
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "eval"))
import evalkit as kit  # noqa: E402
SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, city text, segment text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(10,2), ordered_at date);
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@x.example', (ARRAY['Oslo','Rome','Lima'])[1 + g % 3], (ARRAY['Small Business','Enterprise'])[1 + g % 2] FROM generate_series(1, 3000) g;
INSERT INTO orders SELECT g, 1 + g % 3000, (g * 7) % 100, date '2022-01-01' + g % 700 FROM generate_series(1, 30000) g;
ANALYZE;
"""
def run(conn, q, n=100):
    out=[]
    for i in range(n):
        out.append(conn.execute("SELECT elapsed_ms, engine FROM sqlchat.ask_full(%s)", (q,)).fetchone()[0])
    return statistics.median(out)
with kit.environment() as (cluster, gw):
    f = Path(tempfile.mkdtemp())/"shop.sql"; f.write_text(SHOP)
    kit.load_database(cluster, "ovh", [f])
    conn = kit.connect(cluster, "ovh", engine="llm")
    gw.rule(purpose="generate_sql", content="SELECT c.city, sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1")
    q = "total order amount per customer city"
    run(conn, q, 10)
    base = run(conn, q)
    for i in range(200):
        conn.execute("SELECT sqlchat.teach(%s, %s)", (f"question number {i} about orders of customers in city {i}", f"SELECT count(*) FROM orders WHERE id > {i}"))
    for i in range(50):
        conn.execute("SELECT sqlchat.define(%s, %s)", (f"term{i} thing", "meaning " * 10))
    conn.execute("SELECT sqlchat.set_private('customers', 'email')")
    taught = run(conn, q)
    conn.execute("SELECT sqlchat.teach(%s, %s)", (q, "SELECT c.city, sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1"))
    verified = run(conn, q)
    print(f"ask_full elapsed_ms median (fake gateway, 0 ms latency, 100 asks): nothing taught {base:.1f}, 200 examples + 50 definitions + 1 private column {taught:.1f}, verified {verified:.1f}")
