"""Inbound messages end to end: simulated phones -> wahttp (decrypt, record) -> webhook.

Per scenario (`--scenarios sessions:messages-each`, default 1:300 and 10:60): a fresh
database and `wahttp serve` with a global webhook pointing at a receiver in this process;
every session is linked by pairing code to its own phone, and a friend phone per session
sends to it. After a warm-up (Signal sessions established: pkmsg, then msg), every friend
sends its texts at once through the simulator's burst endpoint (as fast as the session's
stream takes them). Throughput is messages / (last webhook arrival - start); latency is a
message's webhook arrival minus the moment the simulator sent it.

The simulator is checked not to be the bottleneck: its CPU share during the run, and when it
had finished sending compared with when the last webhook arrived.

Run: .venv/bin/python bench/receive.py [--scenarios 1:300,10:60] [--out PATH]
Writes bench/results/receive.json and prints a table.
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
    HOOK_SECRET,
    HookReceiver,
    Serve,
    Sim,
    Usage,
    fresh_database,
    gather_all,
    latency_summary,
    link_sessions,
    log,
    machine,
    print_targets,
    profiled,
    settle,
    target,
    versions,
    wait_quiet,
    write_result,
)

WARMUP = 3


async def _burst(sim: Sim, friend: str, to: str, count: int, text: str) -> list[dict[str, Any]]:
    resp = await sim.admin.post(
        f"/phones/{friend}/messages/burst", json={"to": to, "count": count, "text": text}
    )
    resp.raise_for_status()
    sent: list[dict[str, Any]] = resp.json()
    return sent


async def _arrived(receiver: HookReceiver, ids: set[str], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not ids <= {h.data.get("id") for h in receiver.of("message")}:
            receiver.changed.clear()
            await receiver.changed.wait()


async def scenario(
    sim: Sim, sessions: int, per_session: int, workdir: Path, **env: str
) -> dict[str, Any]:
    receiver = HookReceiver()
    await receiver.start()
    try:
        async with fresh_database() as dsn:
            serve = Serve.configure(
                sim,
                dsn,
                workdir,
                WAHTTP_WEBHOOK_URL=receiver.url,
                WAHTTP_WEBHOOK_SECRET=HOOK_SECRET,
                **env,
            )
            async with serve.closing():
                return await _measure(sim, serve, receiver, sessions, per_session)
    finally:
        await receiver.stop()


async def _measure(
    sim: Sim, serve: Serve, receiver: HookReceiver, sessions: int, per_session: int
) -> dict[str, Any]:
    await serve.start()
    ids = [f"r{i:03d}" for i in range(sessions)]
    linked = await link_sessions(serve, sim, ids)
    await settle(serve.usage)  # the folder mirror writes the pre-keys behind
    friends = await sim.new_phones(sessions)
    pairs = [(f, linked[s]) for s, f in zip(ids, friends, strict=True)]

    warm = await gather_all(_burst(sim, f, to, WARMUP, "warm-up") for f, to in pairs)
    await _arrived(receiver, {m["id"] for batch in warm for m in batch}, 120)

    w0, s0 = serve.usage(), Usage.of(sim.ps)
    started = time.time()
    assert serve.proc is not None
    async with profiled(serve.proc.pid, f"receive-{sessions}"):
        bursts = await gather_all(_burst(sim, f, to, per_session, "bench") for f, to in pairs)
        sim_done = time.time()
        sent = {m["id"]: m["sent_at"] for batch in bursts for m in batch}
        await _arrived(receiver, set(sent), 600)
    w1, s1 = serve.usage(), Usage.of(sim.ps)
    arrivals = {h.data["id"]: h.at for h in receiver.of("message") if h.data.get("id") in sent}
    last = max(arrivals.values())
    total = len(sent)
    seconds = last - started
    hooks = receiver.of("message")
    duplicates = len(hooks) - len({h.data.get("id") for h in hooks})
    return {
        "sessions": sessions,
        "messages": total,
        "seconds": round(seconds, 3),
        "messages_per_s": round(total / seconds, 1),
        **latency_summary([arrivals[i] - sent[i] for i in sent]),
        "duplicate_webhooks": duplicates,
        "cpu_ms_per_message": round((w1.cpu - w0.cpu) * 1000 / total, 3),
        "cpu_share_of_one_core": round(w1.cpu_share(w0), 3),
        "rss_mib": round(w1.rss / 2**20, 1),
        "sim_cpu_share_of_one_core": round(s1.cpu_share(s0), 3),
        "sim_done_sending_s": round(sim_done - started, 3),
        "settings": serve.settings(),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="1:300,10:60", help="sessions:messages-each,...")
    parser.add_argument("--out", type=Path, help="write the JSON here instead")
    parser.add_argument(
        "--no-mirror-variant",
        action="store_true",
        help="skip the extra runs with WAHTTP_AUTH_MIRROR=false",
    )
    args = parser.parse_args()
    scenarios = [tuple(int(x) for x in s.split(":")) for s in args.scenarios.split(",")]
    report: dict[str, Any] = {
        "benchmark": "receive",
        "machine": machine(),
        "versions": await versions(),
        "parameters": {
            "scenarios": [{"sessions": s, "messages_per_session": m} for s, m in scenarios],
            "warmup_per_session": WARMUP,
        },
        "load_before_run": round(await wait_quiet(), 2),
    }
    results = []
    sim = await Sim.start()
    try:
        for sessions, per_session in scenarios:
            log(f"receive: {sessions} sessions x {per_session} messages")
            with tempfile.TemporaryDirectory(prefix="wahttp-bench-receive-") as tmp:
                entry = await scenario(sim, sessions, per_session, Path(tmp))
                if not args.no_mirror_variant:
                    log(f"receive: {sessions} sessions, WAHTTP_AUTH_MIRROR=false")
                    entry["without_folder_mirror"] = await scenario(
                        sim, sessions, per_session, Path(tmp) / "b", WAHTTP_AUTH_MIRROR="false"
                    )
                results.append(entry)
    finally:
        await sim.stop()
    rows = []
    for r in results:
        # The simulator is not the bottleneck when it is far from one busy core and finished
        # sending well before the last webhook arrived.
        spare = r["sim_cpu_share_of_one_core"] < 0.7
        rows.append(
            target(
                f"{r['sessions']} session(s): simulator not the bottleneck",
                "sim CPU < 70% of a core",
                r["sim_cpu_share_of_one_core"],
                spare,
                "the simulator was busy: results understate wahttp",
            )
        )
    if len(results) >= 2:
        ratio = results[-1]["cpu_ms_per_message"] / results[0]["cpu_ms_per_message"]
        rows.append(
            target(
                f"CPU per message, {results[-1]['sessions']} vs {results[0]['sessions']} sessions",
                "ratio <= 1.25",
                round(ratio, 3),
                ratio <= 1.25,
                "per-message cost grows with the number of sessions: profile it",
            )
        )
    report["results"] = results
    report["targets"] = rows
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        out = args.out
    else:
        out = write_result("receive", report)
    print(
        f"{'sessions':>18} {'messages':>8} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>9} "
        f"{'CPU ms/msg':>10} {'sim CPU%':>8} {'sim done s':>10} {'total s':>8}"
    )
    shown = [(r, "") for r in results]
    shown += [
        (r["without_folder_mirror"], " no-mirror") for r in results if "without_folder_mirror" in r
    ]
    for r, label in shown:
        name = f"{r['sessions']}{label}"
        print(
            f"{name:>18} {r['messages']:>8} {r['messages_per_s']:>8} {r['p50_ms']:>8} "
            f"{r['p99_ms']:>9} {r['cpu_ms_per_message']:>10} "
            f"{r['sim_cpu_share_of_one_core'] * 100:>8.1f} {r['sim_done_sending_s']:>10} "
            f"{r['seconds']:>8}"
        )
    print_targets(rows)
    print(f"written to {out}")


if __name__ == "__main__":
    asyncio.run(main())
