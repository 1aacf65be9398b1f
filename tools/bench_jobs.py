#!/usr/bin/env python3
"""Figures of background asks (sqlchat.submit / result / cancel_job) against the fake gateway and a
private cluster. Never fails on figures (shared, noisy machine: medians and ratios).

  throughput  64 jobs submitted at once with N workers, the gateway answering each call after
              200 ms: jobs per second against the ideal N / (calls per job x 0.2 s)
  submit      latency of sqlchat.submit (median, p99), workers paused so that only submit is timed
  notify      from a job's end (its finished_at, set just before its transaction commits) to the
              NOTIFY reaching a listening client
  cancel      from calling cancel_job on a running job (the gateway hanging) to its NOTIFY: the job
              is cancelled by then
  restart     20 jobs queued, the server restarted (fast shutdown, start): how many end done, how many
              are lost, and how long after the restart began the last one ended
  fairness    one role queues 40 jobs (2 workers, 200 ms per gateway call), then another role submits
              one: how long that one job waits to end, against one job's time and the flood's

Writes $SQLCHAT_RESULTS_DIR/jobs.json (default ./results) and prints it.

    PGBIN=... python3 tools/bench_jobs.py [--quick]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import harness  # noqa: E402

GEN = "generate_sql"
LATENCY_MS = 200
SHOP = "CREATE TABLE customers (id int PRIMARY KEY, city text);" \
       "INSERT INTO customers SELECT g, (ARRAY['Oslo','Rome'])[1 + g % 2] FROM generate_series(1, 50) g;"
COUNT = "SELECT count(*) AS n FROM customers"


def ms(seconds):
    return round(seconds * 1000, 1)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def summary(values):
    return {"n": len(values), "p50_ms": ms(statistics.median(values)), "p99_ms": ms(pct(values, 99)),
            "max_ms": ms(max(values))}


class Bench:
    def __init__(self, gw, cluster):
        self.gw = gw
        self.cluster = cluster
        self.db = "bench_jobs"

    def connect(self):
        return self.cluster.connect(self.db)

    def workers(self, n):
        self.cluster.set_system({"sqlchat.max_workers": n})

    def wait_done(self, conn, first, last, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = conn.execute("SELECT count(*) FROM sqlchat.job WHERE id BETWEEN %s AND %s "
                                "AND state IN ('queued', 'running')", (first, last)).fetchone()[0]
            if left == 0:
                return True
            time.sleep(0.02)
        return False

    def throughput(self, n, jobs=64):
        self.gw.reset()
        self.gw.rule(purpose=GEN, content=COUNT, delay_ms=LATENCY_MS)
        self.gw.rule(purpose="answer", content=json.dumps({"answer": "Counted.", "followups": []}), delay_ms=LATENCY_MS)
        self.workers(n)
        with self.connect() as conn:
            conn.execute("SET sqlchat.enable_cache = off")
            started = time.monotonic()
            ids = [conn.execute("SELECT sqlchat.submit(%s)", (f"how many customers? ({n}/{i})",)).fetchone()[0]
                   for i in range(jobs)]
            self.wait_done(conn, ids[0], ids[-1])
            wall = time.monotonic() - started
            states = dict(conn.execute("SELECT state, count(*) FROM sqlchat.job WHERE id BETWEEN %s AND %s "
                                       "GROUP BY state", (ids[0], ids[-1])).fetchall())
            calls = conn.execute("SELECT avg((answer).llm_calls) FROM sqlchat.job WHERE id BETWEEN %s AND %s",
                                 (ids[0], ids[-1])).fetchone()[0]
        calls = float(calls or 2)
        ideal = n / (calls * LATENCY_MS / 1000)
        achieved = jobs / wall
        return {"workers": n, "jobs": jobs, "calls_per_job": calls, "wall_s": round(wall, 2),
                "jobs_per_s": round(achieved, 2), "ideal_jobs_per_s": round(ideal, 2),
                "ratio_to_ideal": round(achieved / ideal, 3), "states": states}

    def submit_latency(self, count):
        self.workers(0)
        with self.connect() as conn:
            # All of them stay queued: the cap on one role's queue must allow them (each submit
            # counts the role's queued jobs up to the cap).
            conn.execute("SELECT set_config('sqlchat.max_queued_jobs', %s, false)", (str(count + 20),))
            for _ in range(20):  # warm the backend
                conn.execute("SELECT sqlchat.submit('warm-up')")
            times = []
            for i in range(count):
                t = time.perf_counter()
                conn.execute("SELECT sqlchat.submit(%s)", (f"how many customers ({i})?",))
                times.append(time.perf_counter() - t)
            conn.execute("SELECT sqlchat.cancel_job(job) FROM sqlchat.jobs WHERE state = 'queued'")
        return summary(times)

    def notify_latency(self, count):
        self.gw.reset()
        self.gw.rule(purpose=GEN, content=COUNT)
        self.workers(2)
        with self.connect() as listener, self.connect() as conn:
            listener.execute("LISTEN sqlchat_jobs")
            conn.execute("SET sqlchat.engine = 'offline'")
            deltas = []
            for i in range(count):
                job = conn.execute("SELECT sqlchat.submit('how many customers are there?')").fetchone()[0]
                for note in listener.notifies(timeout=10):
                    if note.payload == str(job):
                        received = time.time()
                        break
                finished = conn.execute("SELECT extract(epoch FROM finished_at)::float8 FROM sqlchat.job "
                                        "WHERE id = %s", (job,)).fetchone()[0]
                deltas.append(received - finished)
        return summary(deltas)

    def cancel_latency(self, count):
        self.gw.reset()
        self.gw.rule(purpose=GEN, fault="hang_before_headers", hang_ms=60000)
        self.workers(2)
        times, states = [], {}
        with self.connect() as listener, self.connect() as conn:
            listener.execute("LISTEN sqlchat_jobs")
            for i in range(count):
                job = conn.execute("SELECT sqlchat.submit(%s)", (f"a hanging question {i}",)).fetchone()[0]
                while conn.execute("SELECT state FROM sqlchat.job WHERE id = %s", (job,)).fetchone()[0] != "running":
                    time.sleep(0.005)
                time.sleep(0.02)  # in the gateway wait
                started = time.perf_counter()
                conn.execute("SELECT sqlchat.cancel_job(%s)", (job,))
                for note in listener.notifies(timeout=10):
                    if note.payload == str(job):
                        times.append(time.perf_counter() - started)
                        break
                s = conn.execute("SELECT state FROM sqlchat.job WHERE id = %s", (job,)).fetchone()[0]
                states[s] = states.get(s, 0) + 1
        return {**summary(times), "states": states}

    def restart(self, queued=20):
        self.gw.reset()
        self.gw.rule(purpose=GEN, content=COUNT)
        self.workers(0)
        with self.connect() as conn:
            ids = [conn.execute("SELECT sqlchat.submit(%s)", (f"how many customers, restart {i}?",)).fetchone()[0]
                   for i in range(queued)]
        with self.cluster.connect() as admin:
            admin.execute("ALTER SYSTEM RESET sqlchat.max_workers")
        started = time.monotonic()
        self.cluster_restart()
        restarted = time.monotonic() - started
        with self.connect() as conn:
            self.wait_done(conn, ids[0], ids[-1], timeout=60)
            took = time.monotonic() - started
            done = conn.execute("SELECT count(*) FROM sqlchat.job WHERE id BETWEEN %s AND %s AND state = 'done'",
                                (ids[0], ids[-1])).fetchone()[0]
        return {"queued": queued, "done": done, "lost": queued - done, "restart_s": round(restarted, 2),
                "all_done_after_s": round(took, 2)}

    def fairness(self, flood=40):
        self.gw.reset()
        self.gw.rule(purpose=GEN, content=COUNT, delay_ms=LATENCY_MS)
        self.workers(2)
        with self.cluster.connect(self.db) as admin:
            for role in ("bench_flood", "bench_lone"):
                admin.execute(f"DROP ROLE IF EXISTS {role}")
                admin.execute(f"CREATE ROLE {role} LOGIN")
                admin.execute(f"GRANT SELECT ON customers TO {role}")
        with self.cluster.connect(self.db, user="bench_flood") as flooder, \
                self.cluster.connect(self.db, user="bench_lone") as lone:
            for conn in (flooder, lone):
                conn.execute("SET sqlchat.enable_cache = off")
            started = time.monotonic()
            ids = [flooder.execute("SELECT sqlchat.submit(%s)", (f"how many customers? (flood {i})",)).fetchone()[0]
                   for i in range(flood)]
            asked = time.monotonic()
            job = lone.execute("SELECT sqlchat.submit('how many customers? (alone)')").fetchone()[0]
            lone.execute("SELECT sqlchat.result(%s, 120000)", (job,))
            lone_s = time.monotonic() - asked
        with self.connect() as conn:
            self.wait_done(conn, ids[0], ids[-1])
            flood_s = time.monotonic() - started
            one = conn.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
                                  "finished_at - started_at)) FROM sqlchat.job WHERE id BETWEEN %s AND %s",
                                  (ids[0], ids[-1])).fetchone()[0]
        return {"flood_jobs": flood, "workers": 2, "lone_job_wait_s": round(lone_s, 2),
                "one_job_s_median": round(float(one), 2), "flood_all_done_s": round(flood_s, 2),
                "lone_wait_in_jobs": round(lone_s / float(one), 1)}

    def cluster_restart(self):
        c = self.cluster
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "stop", str(c.dir)], check=True, capture_output=True)
        env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "start", str(c.dir), str(c.port),
                        "shared_preload_libraries=sqlchat", *SETTINGS], check=True, capture_output=True, env=env)


SETTINGS = ["max_worker_processes=24", "sqlchat.worker_idle_timeout=2"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    args = ap.parse_args()
    worker_counts = [1, 4] if args.quick else [1, 2, 4, 8]
    reps = 10 if args.quick else 50

    gw = harness.Gateway()
    cluster = harness.Cluster(settings=SETTINGS)
    figures = {"gateway_latency_ms": LATENCY_MS}
    try:
        cluster.set_system({"sqlchat.api_base": gw.api_base, "sqlchat.api_key": harness.API_KEY,
                            "sqlchat.model": harness.MODEL})
        path = cluster.dir / "shop.sql"
        path.write_text(SHOP)
        cluster.create_database("bench_jobs", [path])
        bench = Bench(gw, cluster)
        figures["throughput"] = [bench.throughput(n) for n in worker_counts]
        figures["submit"] = bench.submit_latency(200 if args.quick else 1000)
        figures["notify_after_job_end"] = bench.notify_latency(reps)
        figures["cancel_running_to_cancelled"] = bench.cancel_latency(reps)
        figures["fairness"] = bench.fairness()
        figures["restart"] = bench.restart()
    finally:
        cluster.stop()
        gw.stop()
    path = harness.write_results("jobs", figures)
    print(json.dumps(figures, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
