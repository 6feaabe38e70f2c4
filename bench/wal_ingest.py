#!/usr/bin/env python3
"""WAL ingest benchmark: logship (file store, S3 via s3s-fs) vs pg_receivewal.

One run, one machine, one PostgreSQL 15. Each consumer gets its own phase: it
starts, catches up, then a bulk load writes at least --rows rows (about 1.1 GB
of WAL for the default) while it streams. For each consumer it reports:

- WAL MB/s ingested: WAL bytes of the load / time from load start until the
  consumer's flush position (pg_stat_replication.flush_lsn, which logship sets
  to what is durable in the store) reaches the load's end;
- CPU seconds per GB of WAL and peak RSS during the load (from /usr/bin/time
  -v; the peak is reset once the consumer has caught up);
- start peak RSS: the peak before that reset, while logship also took the
  first base backup of the empty archive;
- catch-up: how long after the load ends the flush position reaches the
  server's position.

Usage: bench/wal_ingest.py [--rows N] [--out FILE]   (run as root or as a user
that can run PostgreSQL; needs postgresql-15, s3s-fs and GNU time)
"""
import argparse
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BINDIR = os.environ.get("LOGSHIP_PG_BINDIR", "/usr/lib/postgresql/15/bin")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Postgres:
    def __init__(self, base):
        self.dir = os.path.join(base, "pg")
        os.makedirs(self.dir)
        if AS_PG:
            pw = pwd.getpwnam("postgres")
            os.chown(base, pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        run(AS_PG + [f"{BINDIR}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
port = {self.port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.dir}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
synchronous_commit = off
""")
        run(AS_PG + [f"{BINDIR}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "start"])

    def sql(self, q):
        return run(AS_PG + [f"{BINDIR}/psql", "-h", self.dir, "-p", str(self.port), "-U", "postgres",
                            "-At", "-X", "-c", q]).stdout.strip()

    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        subprocess.run(AS_PG + [f"{BINDIR}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"],
                       capture_output=True)


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def flush_of(pg, app):
    out = pg.sql(f"SELECT flush_lsn FROM pg_stat_replication WHERE application_name = '{app}'")
    return lsn(out) if out else 0


def wait_flush(pg, app, target, timeout=600):
    start = time.monotonic()
    while flush_of(pg, app) < target:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"{app} did not reach {target:X} within {timeout}s")
        time.sleep(0.02)
    return time.monotonic()


def descendants(pid):
    """Every process below `pid` (the consumer under /usr/bin/time, and runuser's child)."""
    found = []
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        for child in f.read().split():
            found.append(int(child))
            found.extend(descendants(int(child)))
    return found


def first_backup_done(env):
    """Whether logship's first base backup is durable (always, for other consumers)."""
    listen = env.get("LOGSHIP_METRICS_LISTEN")
    if not listen:
        return True
    try:
        text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
    except OSError:
        return False
    done = re.search(r"^logship_backup_last_success_timestamp_seconds\{[^}]*\} (\S+)$", text, re.M)
    return bool(done) and float(done.group(1)) > 0


def reset_peak(pid):
    """Peak RSS (MB) of the processes below `pid` so far; then restarts their peaks
    (clear_refs 5), so that /usr/bin/time reports the peak from here on."""
    peak = 0
    for child in descendants(pid):
        with open(f"/proc/{child}/status") as f:
            hwm = re.search(r"VmHWM:\s+(\d+) kB", f.read())
        peak = max(peak, int(hwm.group(1)) / 1024 if hwm else 0)
        with open(f"/proc/{child}/clear_refs", "w") as f:
            f.write("5")
    return peak


def parse_time_v(path):
    text = open(path).read()
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return user + sys_, rss / 1024


def phase(pg, name, cmd, env, rows, work):
    """Starts a consumer under /usr/bin/time, loads `rows` rows, measures, stops it."""
    app = name
    timefile = os.path.join(work, f"{name}.time")
    log = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", timefile] + cmd, env=env,
                            stdout=log, stderr=log)
    start = time.monotonic()
    while flush_of(pg, app) == 0:
        if proc.poll() is not None or time.monotonic() - start > 60:
            raise SystemExit(f"{name} did not start streaming; see {log.name}")
        time.sleep(0.05)
    while not first_backup_done(env):
        if proc.poll() is not None or time.monotonic() - start > 120:
            raise SystemExit(f"{name} did not finish its first base backup; see {log.name}")
        time.sleep(0.1)
    pg.sql("SELECT pg_switch_wal()")
    wait_flush(pg, app, lsn(pg.sql("SELECT pg_current_wal_flush_lsn()")))
    start_peak = reset_peak(proc.pid)
    table = f"load_{name.replace('-', '_')}"
    load_start_lsn = lsn(pg.sql("SELECT pg_current_wal_insert_lsn()"))
    t0 = time.monotonic()
    pg.sql(f"CREATE TABLE {table} AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, {rows}) g")
    t_load = time.monotonic()
    end_lsn = lsn(pg.sql("SELECT pg_current_wal_flush_lsn()"))
    t_caught = wait_flush(pg, app, end_lsn)
    # Signal the consumer, not /usr/bin/time, so that time still writes its report.
    stop = signal.SIGINT if name == "pg_receivewal" else signal.SIGTERM
    for pid in descendants(proc.pid):
        os.kill(pid, stop)
    proc.wait(timeout=60)
    cpu, rss = parse_time_v(timefile)
    wal = end_lsn - load_start_lsn
    pg.sql(f"DROP TABLE {table}")
    pg.sql("CHECKPOINT")
    return {
        "consumer": name,
        "wal_mb": wal / 1e6,
        "load_s": t_load - t0,
        "mb_per_s": wal / 1e6 / (t_caught - t0),
        "cpu_s_per_gb": cpu / (wal / 1e9),
        "peak_rss_mb": rss,
        "start_peak_rss_mb": start_peak,
        "catch_up_s": t_caught - t_load,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    run(["cargo", "build", "--release", "-p", "logship"], cwd=ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    logship = os.path.join(target, "release", "logship")
    base = tempfile.mkdtemp(prefix="logship-bench-")
    os.chmod(base, 0o755)
    pg = Postgres(base)
    s3dir = os.path.join(base, "s3")
    os.makedirs(os.path.join(s3dir, "bench"))
    s3port = free_port()
    s3 = subprocess.Popen(["s3s-fs", "--host", "127.0.0.1", "--port", str(s3port), "--access-key", "AK",
                           "--secret-key", "SK", s3dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    results = []
    try:
        env = dict(os.environ, LOGSHIP_LOG="warn")
        for name, store, extra in [
            ("logship-file", f"file://{base}/store", {}),
            ("logship-s3", "s3://bench/wal", {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK",
                                              "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                                              "LOGSHIP_STORE_ENDPOINT": f"http://127.0.0.1:{s3port}",
                                              "LOGSHIP_STORE_PATH_STYLE": "true"}),
        ]:
            e = dict(env, **extra)
            e.update({
                "LOGSHIP_SOURCE_BENCH_URL": pg.url(), "LOGSHIP_SOURCE_BENCH_KIND": "postgres",
                "LOGSHIP_SOURCE_BENCH_SLOT": name.replace("-", "_"),
                "LOGSHIP_SOURCE_BENCH_APPLICATION_NAME": name,
                "LOGSHIP_STORE_URL": store, "LOGSHIP_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            })
            results.append(phase(pg, name, [logship, "run"], e, args.rows, base))
        recv = os.path.join(base, "receivewal")
        os.makedirs(recv)
        if AS_PG:
            shutil.chown(recv, "postgres", "postgres")
        pg.sql("SELECT pg_create_physical_replication_slot('receivewal', true)")
        results.append(phase(pg, "pg_receivewal",
                             AS_PG + [f"{BINDIR}/pg_receivewal", "-D", recv, "--slot", "receivewal", "--synchronous",
                                      "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-n",
                                      "-d", f"application_name=pg_receivewal"],
                             env, args.rows, base))
    finally:
        pg.stop()
        s3.terminate()
        shutil.rmtree(base, ignore_errors=True)

    ref = next(r for r in results if r["consumer"] == "pg_receivewal")
    lines = ["| consumer | WAL MB | load s | MB/s | CPU s/GB | × pg_receivewal CPU | peak RSS MB | start peak RSS MB | catch-up s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['consumer']} | {r['wal_mb']:.0f} | {r['load_s']:.2f} | {r['mb_per_s']:.0f} | {r['cpu_s_per_gb']:.2f} | "
                     f"{r['cpu_s_per_gb'] / ref['cpu_s_per_gb']:.2f} | {r['peak_rss_mb']:.1f} | "
                     f"{r['start_peak_rss_mb']:.1f} | {r['catch_up_s']:.2f} |")
    table = "\n".join(lines)
    print(table)
    print(json.dumps(results, indent=1), file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
