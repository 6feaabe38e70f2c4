#!/usr/bin/env python3
"""Base backup and restore benchmark: logship vs pg_basebackup and pgBackRest.

One run, one machine, one PostgreSQL 15 server holding a pgbench database of
about 2.2 GB (scale 150):

- Base backup, --rounds times each, in turns: `pg_basebackup -Ft -Xnone
  --compress=client-lz4 -c fast`, `logship backup` (file store, with `logship
  run` streaming the server, since a backup waits until its WAL is archived) and
  `pgbackrest backup --type=full` (lz4, process-max=2, start-fast, local repo,
  archive-check on, so that it too waits for its WAL). For each: MB/s of
  database size (the median round), client CPU seconds and peak RSS from
  /usr/bin/time -v, and ratios against pg_basebackup.
- Restore: after the last round, a bulk load writes --rows rows (about 1.1 GB
  of WAL for the default); the WAL is switched and both archives are waited for,
  then the source is stopped. Each restore is timed end to end, from an empty
  directory until the restored server has replayed all archived WAL, promoted and
  accepts connections: `logship restore --latest --start`, and `pgbackrest
  restore` followed by starting the server with its `archive-get`
  restore_command (synchronous, as configured by default, and with
  archive-async=y, pgBackRest's prefetching); --restore-rounds times each, in
  turns, reporting the median. Both replay from their own last backup (taken
  seconds apart, logship's first) to the same WAL end; the server logs' "redo
  starts at" and "redo done at" lines are reported to show it. "unpack" is the
  time until the server starts, "replay" the rest: it includes the server's own
  startup work, such as fsyncing a data directory that was not fsynced.

The restore_commands (`logship wal-fetch`, `pgbackrest archive-get`) run as
processes of their own, started by the server for each file; /usr/bin/time does
not see them. Their count is taken from the server log and their peak RSS is
sampled from /proc.

Usage: bench/backup_restore.py [--scale N] [--rows N] [--rounds N] [--restore-rounds N]
                               [--out FILE]
(run as root or as a user that can run PostgreSQL; needs postgresql-15,
pgbackrest and GNU time)
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from wal_ingest import AS_PG, BINDIR, ROOT, Postgres, free_port, lsn, parse_time_v, run, wait_flush

STANZA = "bench"
PSQL = f"{BINDIR}/psql"


def give_to_postgres(path):
    """Creates `path` for the server user, private as PostgreSQL wants its directories."""
    os.makedirs(path, exist_ok=True)
    if AS_PG:
        shutil.chown(path, "postgres", "postgres")
    os.chmod(path, 0o700)
    return path


def timed(name, cmd, work, env=None):
    """Runs `cmd` under /usr/bin/time -v; returns wall seconds, CPU seconds (all its processes) and
    peak RSS MB (its largest process)."""
    timefile = os.path.join(work, f"{name}.time")
    t0 = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-v", "-o", timefile] + cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(f"{name} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    cpu, rss = parse_time_v(timefile)
    return wall, cpu, rss


def query(port, q):
    out = subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-At", "-X", "-c", q],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


class CommandWatch:
    """Samples /proc while a restore runs: the peak RSS of restore_command processes (`marker` in
    their command line), and when `pid_file` (the server's postmaster.pid) first appears."""

    def __init__(self, marker, pid_file):
        self.marker = marker.encode()
        self.pid_file = pid_file
        self.peak_kb = 0
        self.started_at = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            if self.started_at is None and os.path.exists(self.pid_file):
                self.started_at = time.monotonic()
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                    # Not the shell PostgreSQL runs the restore_command through.
                    if not any(self.marker in a for a in argv) or os.path.basename(argv[0]) == b"sh":
                        continue
                    with open(f"/proc/{pid}/status") as f:
                        hwm = re.search(r"VmHWM:\s+(\d+) kB", f.read())
                except OSError:
                    continue
                if hwm:
                    self.peak_kb = max(self.peak_kb, int(hwm.group(1)))
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.peak_kb / 1024


def redo_range(log_path):
    """The first "redo starts at" and the last "redo done at" LSN of a server log, as integers."""
    text = open(log_path).read()
    start = re.search(r"redo starts at ([0-9A-F]+/[0-9A-F]+)", text)
    done = re.findall(r"redo done at ([0-9A-F]+/[0-9A-F]+)", text)
    if not start or not done:
        raise SystemExit(f"no redo range in {log_path}")
    return lsn(start.group(1)), lsn(done[-1])


def restored_files(log_path):
    return len(re.findall(r'restored log file "', open(log_path).read()))


class PgBackRest:
    """A pgBackRest repository on this machine, for one stanza."""

    def __init__(self, base, pg):
        self.dir = give_to_postgres(os.path.join(base, "pgbackrest"))
        for sub in ("repo", "log", "lock", "spool"):
            give_to_postgres(os.path.join(self.dir, sub))
        self.configs = {}
        for name, extra in (("sync", ""), ("async", "archive-async=y\n")):
            path = os.path.join(self.dir, f"{name}.conf")
            with open(path, "w") as f:
                f.write(f"""[global]
repo1-path={self.dir}/repo
compress-type=lz4
process-max=2
start-fast=y
archive-check=y
log-path={self.dir}/log
lock-path={self.dir}/lock
spool-path={self.dir}/spool
log-level-console=warn
repo1-retention-full=99
{extra}
[{STANZA}]
pg1-path={pg.data}
pg1-port={pg.port}
pg1-socket-path={pg.dir}
pg1-user=postgres
""")
            os.chmod(path, 0o644)
            self.configs[name] = path

    def cmd(self, *args, config="sync"):
        return AS_PG + ["pgbackrest", f"--config={self.configs[config]}", f"--stanza={STANZA}"] + list(args)

    def archive_command(self):
        return " ".join(self.cmd("archive-push", "%p")[len(AS_PG):])


def backup_round(pg, repo, logship, env, work, i):
    """One backup with each tool; returns rows of (tool, wall s, CPU s, peak RSS MB)."""
    rows = []
    out = os.path.join(work, f"basebackup-{i}")
    wall, cpu, rss = timed(f"pg_basebackup-{i}", [
        f"{BINDIR}/pg_basebackup", "-Ft", "-Xnone", "--compress=client-lz4", "-c", "fast", "-D", out,
        "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres"], work)
    shutil.rmtree(out)
    rows.append(("pg_basebackup", wall, cpu, rss))
    wall, cpu, rss = timed(f"logship-backup-{i}", [logship, "backup"], work, env)
    rows.append(("logship backup", wall, cpu, rss))
    wall, cpu, rss = timed(f"pgbackrest-backup-{i}", repo.cmd("backup", "--type=full"), work)
    rows.append(("pgBackRest backup", wall, cpu, rss))
    return rows


def logship_restore(logship, env, base, port):
    """`logship restore --latest --start`, timed until the promoted server accepts connections."""
    to = os.path.join(base, "restore-logship")
    watch = CommandWatch("wal-fetch", os.path.join(to, "postmaster.pid"))
    t0 = time.monotonic()
    wall, cpu, rss = timed("logship-restore", [logship, "restore", "--to", to, "--latest", "--start",
                                                  "--port", str(port)], base, env)
    t_end = time.monotonic()
    command_rss = watch.finish()
    if query(port, "SELECT 1") != "1":
        raise SystemExit("the server logship restored does not accept connections")
    started = watch.started_at or t_end
    return to, os.path.join(to, "logship-restore.log"), {
        "wall_s": wall, "unpack_s": started - t0, "replay_s": t_end - started, "cpu_s": cpu, "peak_rss_mb": rss,
        "command_peak_rss_mb": command_rss}


def pgbackrest_restore(repo, config, base, port):
    """`pgbackrest restore`, then the server started on it, timed until it has promoted."""
    to = os.path.join(base, f"restore-pgbackrest-{config}")
    give_to_postgres(to)
    log = os.path.join(base, f"restore-pgbackrest-{config}.log")
    watch = CommandWatch("archive-get", os.path.join(to, "postmaster.pid"))
    t0 = time.monotonic()
    wall, cpu, rss = timed(f"pgbackrest-restore-{config}", repo.cmd(
        "restore", f"--pg1-path={to}", "--archive-mode=off", config=config), base)
    t_unpacked = time.monotonic()
    run(AS_PG + [f"{BINDIR}/pg_ctl", "-D", to, "-l", log, "-o",
                 f"-p {port} -c unix_socket_directories={to}", "-W", "start"])
    while query(port, "SELECT pg_is_in_recovery()") != "f":
        if time.monotonic() - t0 > 1800:
            raise SystemExit(f"pgBackRest's restored server did not finish recovery; see {log}")
        if time.monotonic() - t_unpacked > 15 and not os.path.exists(os.path.join(to, "postmaster.pid")):
            raise SystemExit(f"pgBackRest's restored server stopped; see {log}")
        time.sleep(0.1)
    t_end = time.monotonic()
    command_rss = watch.finish()
    return to, log, {
        "wall_s": t_end - t0, "unpack_s": wall, "replay_s": t_end - t_unpacked, "cpu_s": cpu, "peak_rss_mb": rss,
        "command_peak_rss_mb": command_rss}


def finish_restore(name, to, log, result, rows, load_table):
    """Checks the restored server holds the whole load, records its redo range, stops it."""
    count = query(result["port"], f"SELECT count(*) FROM {load_table}")
    if count != str(rows):
        raise SystemExit(f"{name}: the restored {load_table} holds {count} rows, not {rows}; see {log}")
    result["redo_start"], result["redo_end"] = redo_range(log)
    result["wal_files"] = restored_files(log)
    subprocess.run(AS_PG + [f"{BINDIR}/pg_ctl", "-D", to, "-m", "immediate", "-w", "stop"], capture_output=True)
    shutil.rmtree(to, ignore_errors=True)
    return result


def fmt_lsn(value):
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=150, help="pgbench scale (150: about 2.2 GB)")
    ap.add_argument("--rows", type=int, default=4_000_000, help="rows loaded after the backups")
    ap.add_argument("--rounds", type=int, default=3, help="backups taken with each tool")
    ap.add_argument("--restore-rounds", type=int, default=3, help="restores run with each tool")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    run(["cargo", "build", "--release", "-p", "logship"], cwd=ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    logship = os.path.join(target, "release", "logship")
    base = tempfile.mkdtemp(prefix="logship-bench-")
    os.chmod(base, 0o755)
    pg = Postgres(base)
    repo = PgBackRest(base, pg)
    daemon = None
    try:
        # The initial load's WAL is of no use to any restore here: it is archived nowhere.
        pg.sql("ALTER SYSTEM SET archive_mode = on")
        pg.sql("ALTER SYSTEM SET archive_command = '/bin/true'")
        run(AS_PG + [f"{BINDIR}/pg_ctl", "-D", pg.data, "-l", os.path.join(pg.dir, "log"), "-w", "restart"])
        t0 = time.monotonic()
        run(AS_PG + [f"{BINDIR}/pgbench", "-i", "-s", str(args.scale), "-I", "dtGvp", "-q",
                     "-h", pg.dir, "-p", str(pg.port), "-U", "postgres", "postgres"])
        print(f"pgbench -i -s {args.scale}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        db_bytes = int(pg.sql("SELECT sum(pg_database_size(oid)) FROM pg_database"))
        pg.sql("SELECT pg_switch_wal()")
        pg.sql(f"ALTER SYSTEM SET archive_command = '{repo.archive_command()}'")
        pg.sql("SELECT pg_reload_conf()")
        run(repo.cmd("stanza-create"))
        # A new slot starts at the last checkpoint's redo: without one, `logship run` would first
        # archive the whole initial load.
        pg.sql("CHECKPOINT")

        env = dict(os.environ, LOGSHIP_LOG="warn")
        env.update({
            "LOGSHIP_SOURCE_BENCH_URL": pg.url(), "LOGSHIP_SOURCE_BENCH_KIND": "postgres",
            "LOGSHIP_SOURCE_BENCH_SLOT": "logship", "LOGSHIP_SOURCE_BENCH_APPLICATION_NAME": "logship",
            "LOGSHIP_STORE_URL": f"file://{base}/store", "LOGSHIP_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        })
        daemon = subprocess.Popen([logship, "run"], env=env, stdout=open(os.path.join(base, "run.log"), "w"),
                                  stderr=subprocess.STDOUT)
        # `logship run` takes a first backup by itself when the store holds none: let it finish
        # (it doubles as a warm-up) before the measured backups.
        t0 = time.monotonic()
        while True:
            listed = subprocess.run([logship, "list", "--json"], env=env, capture_output=True, text=True)
            if listed.returncode == 0 and json.loads(listed.stdout)["sources"][0]["backups"]:
                break
            if daemon.poll() is not None or time.monotonic() - t0 > 600:
                raise SystemExit(f"logship run took no first backup; see {base}/run.log")
            time.sleep(1)

        backups = []
        for i in range(args.rounds):
            backups.extend(backup_round(pg, repo, logship, env, base, i))

        load_table = "after_backup"
        start_lsn = lsn(pg.sql("SELECT pg_current_wal_insert_lsn()"))
        pg.sql(f"CREATE TABLE {load_table} AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, {args.rows}) g")
        end_lsn = lsn(pg.sql("SELECT pg_current_wal_insert_lsn()"))
        last_segment = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
        wait_flush(pg, "logship", lsn(pg.sql("SELECT pg_current_wal_flush_lsn()")))
        t0 = time.monotonic()
        while pg.sql("SELECT last_archived_wal FROM pg_stat_archiver") < last_segment:
            if time.monotonic() - t0 > 600:
                raise SystemExit(f"pgBackRest did not archive {last_segment}; see {repo.dir}/log")
            time.sleep(0.2)
        # The source writes no data from here on. Shutting down with archiving on, it switches the
        # segment once more, which only pgBackRest archives: its restore may replay one switch
        # record more.
        daemon.terminate()
        daemon.wait(timeout=120)
        daemon = None
        run(AS_PG + [f"{BINDIR}/pg_ctl", "-D", pg.data, "-m", "fast", "-w", "stop"])

        restores = []
        for _ in range(args.restore_rounds):
            port = free_port()
            to, log, result = logship_restore(logship, env, base, port)
            result.update(tool="logship restore --start", port=port)
            restores.append(finish_restore("logship", to, log, result, args.rows, load_table))
            for config in ("sync", "async"):
                port = free_port()
                to, log, result = pgbackrest_restore(repo, config, base, port)
                result.update(tool=f"pgBackRest restore + archive-get ({config})", port=port)
                restores.append(finish_restore(f"pgBackRest {config}", to, log, result, args.rows, load_table))
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=120)
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)

    db_mb = db_bytes / 1e6
    lines = [f"Database: {db_mb:.0f} MB (pgbench scale {args.scale}); median of {args.rounds} backups per tool.", "",
             "| base backup | MB/s | × pg_basebackup | CPU s | × pg_basebackup CPU | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    summary = {}
    for tool in ("pg_basebackup", "logship backup", "pgBackRest backup"):
        mine = [b for b in backups if b[0] == tool]
        summary[tool] = (statistics.median(b[1] for b in mine), statistics.median(b[2] for b in mine),
                         max(b[3] for b in mine))
    ref_wall, ref_cpu, _ = summary["pg_basebackup"]
    for tool, (wall, cpu, rss) in summary.items():
        lines.append(f"| {tool} | {db_mb / wall:.0f} | {ref_wall / wall:.2f} | {cpu:.1f} | {cpu / ref_cpu:.2f} | "
                     f"{rss:.1f} |")
    wal_mb = (end_lsn - start_lsn) / 1e6
    lines += ["", f"Restore: the last backup plus {wal_mb:.0f} MB of WAL written after it ({args.rows} rows); "
              f"median of {args.restore_rounds} restores per tool.", "",
              "| restore | wall s | × pgBackRest (sync) | unpack s | replay s | CPU s | peak RSS MB | "
              "WAL files restored | restore_command peak RSS MB | redo from → to |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    merged = []
    for tool in dict.fromkeys(r["tool"] for r in restores):
        mine = [r for r in restores if r["tool"] == tool]
        row = dict(mine[0])
        row.update({k: statistics.median(r[k] for r in mine) for k in ("wall_s", "unpack_s", "replay_s", "cpu_s")})
        row.update({k: max(r[k] for r in mine) for k in ("peak_rss_mb", "command_peak_rss_mb")})
        merged.append(row)
    ref = next(r for r in merged if r["tool"].endswith("(sync)"))
    for r in merged:
        lines.append(f"| {r['tool']} | {r['wall_s']:.1f} | {r['wall_s'] / ref['wall_s']:.2f} | {r['unpack_s']:.1f} | "
                     f"{r['replay_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.1f} | {r['wal_files']} | "
                     f"{r['command_peak_rss_mb']:.1f} | {fmt_lsn(r['redo_start'])} → {fmt_lsn(r['redo_end'])} |")
    table = "\n".join(lines)
    print(table)
    print(json.dumps({"db_bytes": db_bytes, "wal_bytes": end_lsn - start_lsn, "backups": backups,
                      "restores": restores}, indent=1), file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
