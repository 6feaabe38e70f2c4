#!/usr/bin/env python3
"""Binlog ingest benchmark: logship (file store, S3 via s3s-fs) vs mariadb-binlog.

One run, one machine, one MariaDB 10.11. Each consumer gets its own phase: it
starts at the server's current binlog file and catches up, then the load runs
while it streams: a bulk load (--rows rows in transactions of --batch rows,
about 1.05 GB of ROW binlog for the defaults) and then --small single-row
commits. For each consumer it reports:

- MB/s: binlog bytes of the load / time from the load's start until the
  consumer holds the binlog up to the load's end (logship: durable in the
  store, read from the object keys; mariadb-binlog: written to its files);
- CPU seconds per GB of binlog and peak RSS (from /usr/bin/time -v);
- catch-up: how long after the load ends the consumer reaches that position.

Usage: bench/binlog_ingest.py [--rows N] [--batch N] [--small N] [--out FILE]
(run as root; needs mariadb-server, mariadb-client, s3s-fs and GNU time)
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_DIR = "00000001"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class MariaDb:
    def __init__(self, base):
        self.dir = os.path.join(base, "mariadb")
        os.makedirs(self.dir)
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        run(["mariadb-install-db", "--user=mysql", f"--datadir={data}",
             "--auth-root-authentication-method=normal", "--skip-test-db"])
        self.cnf = os.path.join(self.dir, "my.cnf")
        with open(self.cnf, "w") as f:
            f.write(f"""[mysqld]
datadir={data}
port={self.port}
bind-address=127.0.0.1
socket={self.dir}/mysqld.sock
pid-file={self.dir}/mysqld.pid
log-bin={data}/binlog
server-id=1
binlog_format=ROW
max_binlog_size=256M
innodb_buffer_pool_size=1G
innodb_log_file_size=512M
innodb_flush_log_at_trx_commit=2
sync_binlog=0
max_allowed_packet=64M
user=mysql
""")
        run(["chown", "-R", "mysql:mysql", self.dir])
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(["mariadbd", f"--defaults-file={self.cnf}"],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while subprocess.run(self.client("SELECT 1", db=None), capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"MariaDB did not start; see {self.log.name}")
            time.sleep(0.2)
        run(self.client("CREATE DATABASE bench", db=None))

    def client(self, q, db="bench"):
        return ["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", "-N", "-B"] + ([db] if db else []) + ["-e", q]

    def sql(self, q):
        return run(self.client(q)).stdout.strip()

    def sql_file(self, path):
        with open(path) as f:
            subprocess.run(["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", "bench"],
                           stdin=f, check=True)

    def position(self):
        file, pos = self.sql("SHOW MASTER STATUS").split("\t")[:2]
        return file, int(pos)

    def url(self):
        return f"mysql://root@127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def file_no(name):
    return int(name.rsplit(".", 1)[1])


def logship_reach(server_dir, file):
    """How far the store holds `file` durably, from its object keys alone: the complete
    object's whole-file index, an end marker, or the furthest piece."""
    reach = 0
    try:
        names = os.listdir(server_dir)
    except FileNotFoundError:
        return 0
    complete = file in names
    for name in names:
        if complete and name.startswith(file + ".index.00000000-"):
            reach = max(reach, int(name.rsplit("-", 1)[1], 16))
        elif name.startswith(file + ".partial."):
            reach = max(reach, int(name.rsplit("-", 1)[1], 16))
        elif name.startswith(file + ".end."):
            reach = max(reach, int(name.rsplit(".", 1)[1], 16))
        elif re.fullmatch(r".+\.\d+", name) and file_no(name) > file_no(file):
            return float("inf")
    return reach


def binlog_reach(out_dir, file):
    try:
        return os.path.getsize(os.path.join(out_dir, file))
    except FileNotFoundError:
        return 0


def wait_reach(reach, target, timeout=900):
    file, pos = target
    start = time.monotonic()
    while reach(file) < pos:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"the consumer did not reach {file}:{pos} within {timeout}s")
        time.sleep(0.02)
    return time.monotonic()


def descendants(pid):
    found = []
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        for child in f.read().split():
            found.append(int(child))
            found.extend(descendants(int(child)))
    return found


def parse_time_v(path):
    text = open(path).read()
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return user + sys_, rss / 1024


def binlog_bytes(db, start, end):
    """Bytes of binlog between two positions, across the files between them."""
    sizes = {}
    for line in db.sql("SHOW BINARY LOGS").splitlines():
        name, size = line.split("\t")[:2]
        sizes[name] = int(size)
    total = 0
    for name, size in sizes.items():
        if file_no(name) < file_no(start[0]) or file_no(name) > file_no(end[0]):
            continue
        lo = start[1] if name == start[0] else 0
        hi = end[1] if name == end[0] else size
        total += hi - lo
    return total


def small_commits_file(work, table, n):
    path = os.path.join(work, f"{table}_small.sql")
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"INSERT INTO {table}_small VALUES ({i}, 'small commit {i}');\n")
    return path


def phase(db, name, cmd, env, reach, args, work):
    """Starts a consumer under /usr/bin/time, runs the load, measures, stops it."""
    timefile = os.path.join(work, f"{name}.time")
    log = open(os.path.join(work, f"{name}.log"), "w")
    db.sql("FLUSH BINARY LOGS")
    ready = db.position()
    proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", timefile] + cmd, env=env,
                            stdout=log, stderr=log)
    try:
        wait_reach(reach, ready, timeout=60)
    except SystemExit:
        raise SystemExit(f"{name} did not start streaming; see {log.name}")
    table = "load_" + name.replace("-", "_")
    db.sql(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB; "
           f"CREATE TABLE {table}_small (id BIGINT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
    small = small_commits_file(work, table, args.small)
    start = db.position()
    t0 = time.monotonic()
    for lo in range(0, args.rows, args.batch):
        hi = min(lo + args.batch, args.rows)
        db.sql(f"INSERT INTO {table} SELECT seq, REPEAT('x', 200) FROM seq_{lo + 1}_to_{hi}")
    t_bulk = time.monotonic()
    db.sql_file(small)
    t_load = time.monotonic()
    end = db.position()
    t_caught = wait_reach(reach, end)
    for pid in descendants(proc.pid):
        os.kill(pid, signal.SIGTERM)
    proc.wait(timeout=120)
    cpu, rss = parse_time_v(timefile)
    volume = binlog_bytes(db, start, end)
    db.sql(f"DROP TABLE {table}, {table}_small")
    return {
        "consumer": name,
        "binlog_mb": volume / 1e6,
        "bulk_s": t_bulk - t0,
        "small_commits_s": t_load - t_bulk,
        "mb_per_s": volume / 1e6 / (t_caught - t0),
        "cpu_s_per_gb": cpu / (volume / 1e9),
        "peak_rss_mb": rss,
        "catch_up_s": t_caught - t_load,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--small", type=int, default=5_000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    run(["cargo", "build", "--release", "-p", "logship"], cwd=ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    logship = os.path.join(target, "release", "logship")
    base = tempfile.mkdtemp(prefix="logship-bench-")
    os.chmod(base, 0o755)
    db = MariaDb(base)
    s3dir = os.path.join(base, "s3")
    os.makedirs(os.path.join(s3dir, "bench"))
    s3port = free_port()
    s3 = subprocess.Popen(["s3s-fs", "--host", "127.0.0.1", "--port", str(s3port), "--access-key", "AK",
                           "--secret-key", "SK", s3dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    results = []
    try:
        env = dict(os.environ, LOGSHIP_LOG="warn")
        s3env = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_REGION": "us-east-1",
                 "AWS_EC2_METADATA_DISABLED": "true",
                 "LOGSHIP_STORE_ENDPOINT": f"http://127.0.0.1:{s3port}", "LOGSHIP_STORE_PATH_STYLE": "true"}
        for name, store, objects, extra in [
            ("logship-file", f"file://{base}/store", f"{base}/store", {}),
            ("logship-s3", "s3://bench/binlog", f"{s3dir}/bench/binlog", s3env),
        ]:
            e = dict(env, **extra)
            e.update({
                "LOGSHIP_SOURCE_BENCH_URL": db.url(), "LOGSHIP_SOURCE_BENCH_KIND": "mysql",
                "LOGSHIP_STORE_URL": store, "LOGSHIP_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            })
            server_dir = os.path.join(objects, "bench", "binlog", SERVER_DIR)
            results.append(phase(db, name, [logship, "run"], e,
                                 lambda f, d=server_dir: logship_reach(d, f), args, base))
        out_dir = os.path.join(base, "mariadb-binlog")
        os.makedirs(out_dir)
        first = db.position()[0]
        cmd = ["mariadb-binlog", "--read-from-remote-server", "--raw", "--stop-never",
               "-h127.0.0.1", f"-P{db.port}", "-uroot", f"--result-file={out_dir}/", first]
        # mariadb-binlog starts at the file named on its command line: the phase's FLUSH
        # makes the next one current, so it starts one file early and catches up first.
        results.append(phase(db, "mariadb-binlog", cmd, env,
                             lambda f: binlog_reach(out_dir, f), args, base))
    finally:
        db.stop()
        s3.terminate()
        shutil.rmtree(base, ignore_errors=True)

    ref = next(r for r in results if r["consumer"] == "mariadb-binlog")
    lines = ["| consumer | binlog MB | bulk s | small commits s | MB/s | CPU s/GB | × mariadb-binlog CPU | peak RSS MB | catch-up s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['consumer']} | {r['binlog_mb']:.0f} | {r['bulk_s']:.2f} | {r['small_commits_s']:.2f} | "
                     f"{r['mb_per_s']:.0f} | {r['cpu_s_per_gb']:.2f} | {r['cpu_s_per_gb'] / ref['cpu_s_per_gb']:.2f} | "
                     f"{r['peak_rss_mb']:.1f} | {r['catch_up_s']:.2f} |")
    table = "\n".join(lines)
    print(table)
    print(json.dumps(results, indent=1), file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
