"""Many idle sessions in one wahttp process: memory, idle CPU, and restore after a restart.

For each size N (default 100, 500, 1000), against a fresh simulator process and a fresh
PostgreSQL database:

1. start `wahttp serve` and sample its memory with no session (the baseline);
2. link N sessions to N simulated phones by pairing code (REST API + simulator admin API)
   and wait until /health counts N open;
3. hold them idle and open for `--idle` seconds (default 60): the CPU the process spends
   then is keepalives (one ping per session every 25 s) and nothing else;
4. send a short probe (one session, `--probe` messages, also once with only 100 sessions
   open in the same process) to see that a message costs the same however many sessions are
   open and keys are stored;
5. stop the process (SIGTERM) and start it again: the time from the new process's start until
   /health counts N open is the restore time (every session is read from PostgreSQL, connects,
   does the Noise handshake and logs in).

Run: .venv/bin/python bench/sessions.py [--sizes 100,500,1000] [--idle 60] [--out PATH]
Writes bench/results/sessions.json (or PATH) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    Serve,
    Sim,
    Usage,
    drive_sends,
    fresh_database,
    latency_summary,
    link_sessions,
    log,
    machine,
    mib,
    print_targets,
    settle,
    target,
    versions,
    wait_quiet,
    write_result,
)

MB = 1024 * 1024
RSS_TARGET = 1 * MB
RESTORE_TARGET = 30.0
SESSIONS_TARGET = 1000
EARLY = 100  # with N above this, the probe runs once with this many open too


def _memory(base: Usage, now: Usage, n: int) -> dict[str, Any]:
    return {
        "rss_mib": mib(now.rss),
        "uss_mib": mib(now.uss),
        "rss_per_session_kib": round((now.rss - base.rss) / n / 1024, 1),
        "uss_per_session_kib": round((now.uss - base.uss) / n / 1024, 1),
        "rss_per_session_kib_gross": round(now.rss / n / 1024, 1),
    }


async def probe_send(serve: Serve, session_id: str, friend: str, messages: int) -> dict[str, Any]:
    """CPU and latency of one session's sends (concurrency 1) with every other session open.

    The process's background CPU (keepalives of the idle sessions), sampled for 5 s just
    before, is subtracted; three rounds, and the lowest CPU per message is the result (the
    others show the noise of a shared machine)."""
    await drive_sends(serve, [(session_id, friend)], 5, 1)  # sessions, device lists
    quiet0 = serve.usage()
    await asyncio.sleep(5)
    quiet1 = serve.usage()
    background = quiet1.cpu_share(quiet0)
    rounds = []
    latencies: list[float] = []
    for _ in range(3):
        cpu0 = serve.usage()
        run = await drive_sends(serve, [(session_id, friend)], max(1, messages // 3), 1)
        cpu1 = serve.usage()
        spent = (cpu1.cpu - cpu0.cpu) - background * (cpu1.at - cpu0.at)
        rounds.append(round(spent * 1000 / max(run.sent, 1), 3))
        latencies += run.latencies
    return {
        "messages": len(latencies),
        "concurrency": 1,
        **latency_summary(latencies),
        "background_cpu_share": round(background, 4),
        "cpu_ms_per_message_rounds": rounds,
        "cpu_ms_per_message": min(rounds),
    }


async def run_size(n: int, idle: float, probe: int, workdir: Path) -> dict[str, Any]:
    sim = await Sim.start()
    try:
        async with fresh_database() as dsn:
            serve = Serve.configure(sim, dsn, workdir)
            async with serve.closing():
                return await _measure(sim, serve, n, idle, probe)
    finally:
        await sim.stop()


async def _measure(sim: Sim, serve: Serve, n: int, idle: float, probe: int) -> dict[str, Any]:
    result: dict[str, Any] = {"sessions": n, "settings": serve.settings()}
    await serve.start()
    await asyncio.sleep(3)
    base = serve.usage()
    result["baseline"] = {"rss_mib": mib(base.rss), "uss_mib": mib(base.uss)}

    log(f"N={n}: linking")
    started = time.monotonic()
    ids = [f"s{i:04d}" for i in range(n)]
    early = min(n, EARLY)
    await link_sessions(serve, sim, ids[:early])
    (friend,) = await sim.new_phones(1)
    await settle(serve.usage)
    if probe and n > early:
        # The same probe with only `early` sessions open, in the same process and database:
        # compared with the probe at N below, it shows whether a message costs more when
        # more sessions are open (and more keys are stored).
        result[f"probe_send_at_{early}_open"] = await probe_send(serve, ids[0], friend, probe)
    await link_sessions(serve, sim, ids[early:])
    result["link_seconds"] = round(time.monotonic() - started, 1)
    log(f"N={n}: all open after {result['link_seconds']}s; idle {idle:.0f}s")

    # The last logins' background work, and the folder mirror writing behind the pre-keys of
    # every linked session (812 files each), must be over before "idle" starts.
    result["settle_seconds"] = await settle(serve.usage)
    log(f"N={n}: settled after {result['settle_seconds']}s")
    before, sim_before = serve.usage(), Usage.of(sim.ps)
    await asyncio.sleep(idle)
    after, sim_after = serve.usage(), Usage.of(sim.ps)
    health = await serve.health()
    open_now = health["sessions"].get("open", 0)
    share = after.cpu_share(before)
    result["idle"] = {
        "seconds": round(after.at - before.at, 1),
        "open": open_now,
        "states": health["sessions"],
        **_memory(base, after, n),
        "cpu_share_of_one_core": round(share, 4),
        "cpu_ms_per_session_per_minute": round(share * 60_000 / n, 3),
        "sim_cpu_share_of_one_core": round(sim_after.cpu_share(sim_before), 4),
    }

    if probe:
        result["probe_send"] = await probe_send(serve, ids[0], friend, probe)

    log(f"N={n}: restart")
    result["stop_seconds"] = round(await serve.stop(), 2)
    sim_before = Usage.of(sim.ps)
    started = time.monotonic()
    marks: dict[str, float] = {}

    def tick(sessions: dict[str, Any]) -> None:
        opened = sessions.get("open", 0)
        for fraction in (0.5, 0.9):
            key = f"open_{int(fraction * 100)}pct_s"
            if key not in marks and opened >= fraction * n:
                marks[key] = round(time.monotonic() - started, 2)

    up = await serve.start()
    opened_at = await serve.wait_open(n, timeout=600, on_tick=tick)
    restore = opened_at - started
    sim_after = Usage.of(sim.ps)
    serve_after = serve.usage()
    result["restore"] = {
        "seconds": round(restore, 2),
        "process_up_s": round(up, 2),
        **marks,
        "sim_cpu_share_of_one_core": round(sim_after.cpu_share(sim_before), 3),
        "wahttp_cpu_seconds": round(serve_after.cpu, 2),
    }
    await asyncio.sleep(min(idle, 20))
    result["after_restore"] = _memory(base, serve.usage(), n)
    log(f"N={n}: restored in {restore:.1f}s")
    return result


def _targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    biggest = max(runs, key=lambda r: r["sessions"])
    n = biggest["sessions"]
    per_session = biggest["idle"]["rss_per_session_kib"]
    rows = [
        target(
            "open sessions in one process",
            f">= {SESSIONS_TARGET}",
            biggest["idle"]["open"],
            biggest["idle"]["open"] >= SESSIONS_TARGET,
            f"largest run had N={n}" if n < SESSIONS_TARGET else "not every session stayed open",
        ),
        target(
            f"RSS per idle session (N={n}, KiB)",
            "<= 1024 KiB",
            per_session,
            per_session * 1024 <= RSS_TARGET,
            "see README: biggest items per session and the next step",
        ),
        target(
            f"restore of N={n} sessions (s)",
            f"< {RESTORE_TARGET:.0f} s",
            biggest["restore"]["seconds"],
            biggest["restore"]["seconds"] < RESTORE_TARGET,
            "see README: restore profile",
        ),
    ]
    early_key = f"probe_send_at_{EARLY}_open"
    if early_key in biggest and "probe_send" in biggest:
        a = biggest[early_key]["cpu_ms_per_message"]
        b = biggest["probe_send"]["cpu_ms_per_message"]
        rows.append(
            target(
                f"CPU per message, N={n} vs {EARLY} open (same process)",
                "ratio <= 1.25",
                round(b / a, 3),
                b / a <= 1.25,
                "a message costs more when more sessions are open: profile the probe",
            )
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--probe", type=int, default=200, help="probe messages (0: none)")
    parser.add_argument("--out", type=Path, help="write the JSON here instead")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict[str, Any] = {
        "benchmark": "sessions",
        "machine": machine(),
        "versions": await versions(),
        "parameters": {"sizes": sizes, "idle_seconds": args.idle, "probe_messages": args.probe},
    }
    runs = []
    for n in sizes:
        report.setdefault("load_before_run", {})[str(n)] = round(await wait_quiet(), 2)
        with tempfile.TemporaryDirectory(prefix=f"wahttp-bench-{n}-") as tmp:
            runs.append(await run_size(n, args.idle, args.probe, Path(tmp)))
    report["runs"] = runs
    report["targets"] = _targets(runs)
    out = write_result("sessions", report) if args.out is None else args.out
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"{'N':>6} {'link s':>7} {'RSS MiB':>8} {'KiB/sess':>9} {'USS KiB/s':>9} "
        f"{'idle CPU%':>9} {'ms/sess/min':>11} {'restore s':>9} {'probe ms/msg':>12} "
        f"{'at 100 open':>11}"
    )
    for r in runs:
        idle = r["idle"]
        probe = r.get("probe_send", {}).get("cpu_ms_per_message", "-")
        early = r.get(f"probe_send_at_{EARLY}_open", {}).get("cpu_ms_per_message", "-")
        print(
            f"{r['sessions']:>6} {r['link_seconds']:>7} {idle['rss_mib']:>8} "
            f"{idle['rss_per_session_kib']:>9} {idle['uss_per_session_kib']:>9} "
            f"{idle['cpu_share_of_one_core'] * 100:>9.2f} "
            f"{idle['cpu_ms_per_session_per_minute']:>11} {r['restore']['seconds']:>9} "
            f"{probe:>12} {early:>11}"
        )
    print_targets(report["targets"])
    print(f"written to {out}")


if __name__ == "__main__":
    asyncio.run(main())
