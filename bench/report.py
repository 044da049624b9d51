#!/usr/bin/env python3
"""Turns the JSON reports of `bench/run` into BENCHMARKS.md and a PNG of two plots.

usage: report.py RESULTS_DIR BENCHMARKS.md PLOT.png
"""
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results_dir, md_path, png_path = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))


def load(name):
    with open(os.path.join(results_dir, name + ".json")) as f:
        return json.load(f)


def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # a missing tool leaves a gap, not a failure
        return f"unknown ({e})"


bank = load("bank-max")
alipay = load("alipay-max")
lat200 = load("bank-latency200")
prefetch = {p: load(f"bank-prefetch{p}") for p in (16, 64)}
prefetch[256] = bank
rates = {pct: load(f"bank-rate{pct}") for pct in (25, 50, 75, 100)}
every = [bank, alipay, lat200, *prefetch.values(), *rates.values()]


def verdict(ok):
    return "PASS" if ok else "FAIL"


rows = []
# 1. Bank throughput against the relay.
ratio = bank["ratio_to_relay"]
rows.append((
    "Bank, 1 leg, no latency: worker / relay throughput",
    "≥ 0.50",
    f"{bank['worker']['throughput']:.0f} /s vs relay {bank['relay']['throughput']:.0f} /s",
    f"{ratio:.2f}",
    verdict(ratio >= 0.5),
))
# 2. Alipay against what RSA alone allows, and against the bank case.
rsa = alipay["rsa"]
a_tput = alipay["worker"]["throughput"]
rsa_ratio = a_tput / rsa["bound_per_sec"]
rows.append((
    "Alipay, 1 leg: throughput / RSA-2048 bound on all cores (2 signs + 2 verifies per leg, both sides)",
    "≥ 0.70",
    f"{a_tput:.0f} /s vs bound {rsa['bound_per_sec']:.0f} /s "
    f"(sign {rsa['sign_us']:.0f} µs, verify {rsa['verify_us']:.0f} µs; relay {alipay['relay']['throughput']:.0f} /s)",
    f"{rsa_ratio:.2f}",
    verdict(rsa_ratio >= 0.7),
))
b_tput = bank["worker"]["throughput"]
# Both channels sign and verify the same number of times per leg (CHANNELS.md), so
# RSA explains no difference between them: allow 10% for noise.
rows.append((
    "Alipay vs bank: no slower than RSA explains (same RSA work per leg on both)",
    "≥ 0.90",
    f"{a_tput:.0f} /s vs {b_tput:.0f} /s",
    f"{a_tput / b_tput:.2f}",
    verdict(a_tput >= 0.9 * b_tput),
))
# 3. Latency 200 ms, prefetch 256.
want = 0.9 * 256 / 0.2
l_tput = lat200["worker"]["throughput"]
rows.append((
    "Bank, channel latency 200 ms, prefetch 256: throughput",
    f"≥ {want:.0f} /s (90% of 256 / 0.2 s)",
    f"{l_tput:.0f} /s",
    f"{l_tput / (256 / 0.2):.2f} of 1280",
    verdict(l_tput >= want),
))
# 4. Overhead at half the maximum throughput.
half = rates[50]
overhead = half["worker"]["latency_ms"]["p99"] - half["options"]["latency_ms"]
rows.append((
    "Overhead at half the maximum throughput: p99 publish→terminal minus channel latency",
    "≤ 10 ms",
    f"{overhead:.1f} ms at {half['worker']['throughput']:.0f} /s offered {half['options']['rate']:.0f} /s",
    f"{overhead / 10:.2f} of budget",
    verdict(overhead <= 10),
))
# 5. Memory at prefetch 256.
rss = max(r["worker_peak_rss_mib"] or 0 for r in every if r["options"]["prefetch"] == 256)
rows.append((
    "Peak RSS of the worker at prefetch 256 (max over the runs)",
    "≤ 64 MiB",
    f"{rss:.1f} MiB",
    f"{rss / 64:.2f} of budget",
    verdict(rss <= 64),
))
# 6. Redis round trips.
trips = bank["redis"]["round_trips_per_withdrawal"]
containment = bank["redis"]["round_trips"].get("reserve_daily", 0) / max(1, bank["worker"]["completed"])
rows.append((
    "Redis round trips per single-leg withdrawal, happy path",
    "≤ 3",
    f"{trips:.2f} ({', '.join(f'{k} {v}' for k, v in bank['redis']['round_trips'].items())} "
    f"for {bank['worker']['completed']}): {trips - containment:.2f} for the payout itself "
    f"+ {containment:.2f} for the account's containment limits",
    f"{trips / 3:.2f} of budget",
    verdict(trips <= 3.0001),
))

# Where a bank withdrawal's CPU goes (bank-max): what the machine spends per withdrawal
# (both cores over the throughput, idle included), the RSA work of both sides, the
# worker's own CPU apart from its RSA, and everything else.
b_rsa = bank["rsa"]
rsa_side = (b_rsa["sign_us"] + b_rsa["verify_us"]) / 1000
machine_ms = bank["machine"]["cores"] * 1000 / b_tput
worker_ms = bank["worker_cpu_ms_per_withdrawal"]
parts = [
    ("everything on the machine (cores ÷ throughput, idle included)", machine_ms),
    ("RSA-2048 on both sides (one sign and one verify each)", 2 * rsa_side),
    ("the worker, apart from its RSA", worker_ms - rsa_side),
    ("the rest: RabbitMQ, Redis, the simulator's HTTP and JSON, the load generator, idle",
     machine_ms - worker_ms - rsa_side),
]
cpu_table = "\n".join(
    ["| part | core-ms per withdrawal | share |", "|---|---|---|"]
    + [f"| {name} | {v:.2f} | {v / machine_ms:.0%} |" for name, v in parts]
)
bound = b_rsa["bound_per_sec"]
feasibility = (
    f"RSA alone caps a bank withdrawal at {bound:.0f} /s on these cores, whatever else runs. "
    f"The relay target asks for {0.5 * bank['relay']['throughput']:.0f} /s "
    f"({0.5 * bank['relay']['throughput'] / bound:.1f}× that cap) and the 200 ms target for "
    f"{want:.0f} /s ({want / bound:.2f}× the cap, leaving "
    f"{max(0.0, 1 - want / bound):.0%} of the cores for everything that is not RSA)."
)

# The plots.
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
ps = sorted(prefetch)
left.plot(ps, [prefetch[p]["worker"]["throughput"] for p in ps], "o-", label="worker")
left.plot(ps, [prefetch[p]["relay"]["throughput"] for p in ps], "s--", label="relay (baseline)")
left.set_xscale("log", base=2)
left.set_xticks(ps, [str(p) for p in ps])
left.set_xlabel("prefetch")
left.set_ylabel("withdrawals / s")
left.set_title("Throughput against prefetch (bank, no latency)")
left.set_ylim(bottom=0)
left.grid(alpha=0.3)
left.legend()
pcts = sorted(rates)
offered = [rates[p]["options"]["rate"] for p in pcts]
for q, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^-"), ("max", "x--")):
    right.plot(offered, [rates[p]["worker"]["latency_ms"][q] for p in pcts], style, label=q)
right.set_xlabel("offered withdrawals / s")
right.set_ylabel("publish → terminal event (ms)")
right.set_yscale("log")
right.set_title("Latency against offered load (bank, no latency)")
right.grid(alpha=0.3, which="both")
right.legend()
fig.tight_layout()
fig.savefig(png_path, dpi=110)

# The document.
def run_table():
    lines = [
        "| run | channel | prefetch | latency ms | offered /s | worker /s | relay /s | ratio | p50 ms | p90 ms | p99 ms | max ms | RSS MiB | CPU ms/wd | Redis RT/wd | confirm / call ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = ["bank-max", "alipay-max", "bank-latency200", "bank-prefetch16", "bank-prefetch64",
             "bank-rate25", "bank-rate50", "bank-rate75", "bank-rate100"]
    for name in names:
        r = load(name)
        o, w, rel, lat = r["options"], r["worker"], r["relay"], r["worker"]["latency_ms"]
        cells = [
            name, o["channel"], o["prefetch"], o["latency_ms"], o["rate"] or "max",
            f"{w['throughput']:.0f}",
            f"{rel['throughput']:.0f}" if rel else "–",
            f"{r['ratio_to_relay']:.2f}" if r["ratio_to_relay"] is not None else "–",
            *(f"{lat[q]:.1f}" for q in ("p50", "p90", "p99", "max")),
            f"{r['worker_peak_rss_mib']:.1f}",
            f"{r['worker_cpu_ms_per_withdrawal']:.2f}",
            f"{r['redis']['round_trips_per_withdrawal']:.2f}",
            " / ".join(f"{r['worker_stages_ms'][k]:.1f}" for k in ("event_confirm", "channel_call")),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


targets = "\n".join(
    ["| target | wanted | measured | ratio | verdict |", "|---|---|---|---|---|"]
    + [f"| {a} | {b} | {c} | {d} | **{e}** |" for a, b, c, d, e in rows]
)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem_gib = next((int(l.split()[1]) / 2**20 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
with open(os.path.join(here, "notes.md")) as f:
    notes = f.read()
machine = (
    f"- {os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, {platform.system()} {platform.release()}\n"
    f"- RabbitMQ {cmd('rabbitmqctl', 'version')}, {cmd('redis-server', '--version').split(' sha=')[0]}, "
    f"{cmd('rustc', '--version')}; release build\n"
    f"- everything on the same machine: RabbitMQ, the run's own redis-server, the simulator and the load "
    f"generator (one process), the worker (another)\n"
    f"- generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
    f"{bank['options']['withdrawals']} withdrawals per maximum-throughput run"
)
doc = f"""# Benchmarks

Regenerate everything below, and the plot, with one command on a machine with the local
RabbitMQ and Redis running (nothing else busy):

```sh
bench/run
```

It builds the release binary, runs the matrix of `payout-worker load` runs in
`bench/run` (JSON reports in `target/bench/`), and writes this file and
`bench/benchmarks.png` with `bench/report.py`. Hand-written parts come from
`bench/notes.md`.

## Method

Each `payout-worker load` run owns what it measures: a RabbitMQ vhost of its own, a
redis-server of its own (so every Redis command is the worker's), the channel simulator
(no faults, `--latency-ms` added to every call, bank payments settled in their first answer
as instant payments; in the load generator's process but on a runtime of its own threads,
so that its RSA work does not delay the consumer that timestamps the events) and one
worker process (`payout-worker run`, release build, log
level `info` to a file, as ops would run it). The load generator publishes signed
withdrawals with publisher confirms, up to 512 outstanding ("max": as fast as the broker
confirms them) or at a fixed `--rate`, and consumes the worker's events from a durable
quorum queue, as the funds service would. Throughput is withdrawals that reached a
terminal event divided by the time from the first publish to the last terminal event;
latency is from the publish of a withdrawal to its terminal event. Peak RSS is the worker
process's `VmHWM`, CPU its user+system time per withdrawal, Redis round trips what the
worker's `payout_redis_round_trips_total` counted (one script or one command each; the
redis-server's own `INFO commandstats` is in the JSON as a cross-check).

In the same run, the **relay** baseline: the least a consumer that emits an event per
message can do on this broker. It consumes the same number of messages from a quorum
queue with manual acks and the same prefetch, publishes one persistent event per message
with a confirm to a quorum queue, then acks — no parsing, no Redis, no channel, no second
event. The worker does all of that plus two events per withdrawal (`processing`, then the
terminal one), three Redis scripts, and a signed HTTPS-style channel call with RSA on
both sides. The **RSA bound** is what the RSA-2048 work alone would allow on every core:
both sides sign once and verify once per leg (the worker signs its request and verifies
the answer; the simulator verifies and signs), measured with `ring` in the same run.

## Machine

{machine}

## Targets

{targets}

![throughput against prefetch, latency against offered load](bench/benchmarks.png)

## Where a bank withdrawal's CPU goes

Derived from the `bank-max` run: {bank['worker']['throughput']:.0f} withdrawals/s on
{bank['machine']['cores']} cores, the worker's CPU per withdrawal, and RSA measured in
the same run.

{cpu_table}

{feasibility}

## All runs

"confirm / call ms" are the worker's own means over the run: one event publish until its
confirm, and one channel request until its answer (RSA on both sides included).

{run_table()}

{notes}
"""
with open(md_path, "w") as f:
    f.write(doc)
