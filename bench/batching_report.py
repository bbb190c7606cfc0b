#!/usr/bin/python3
"""Summarises a batching_bench.sh run: the throughput/latency table with the
issue's targets, and where the CPU went.

usage: batching_report.py RUN_DIR

RUN_DIR holds, per model M, target T (base, off, on), concurrency C and
round R: M.T.cC.rR.json (nnserve-cli bench --json), M.T.cC.rR.cpu (the
server's CPU clock ticks before and after the run) and, for nnserve,
M.T.cC.rR.before.prom / .after.prom (its /metrics around the run); and
settings.json ({rounds, models, concurrency, duration, warmup, clk_tck,
cores}). Exits 1 if any call failed.
"""
import json
import os
import re
import statistics
import sys

PROM_LINE = re.compile(
    r'nnserve_inference_(duration_seconds_sum|duration_seconds_count|rows_total)'
    r'\{([^}]*)\} (\S+)')
PROM_KEYS = {"duration_seconds_sum": "seconds",
             "duration_seconds_count": "forwards", "rows_total": "rows"}


def parse_forward_totals(text, model):
    """Forward-pass totals of `model` in a /metrics text: seconds, forwards,
    rows."""
    totals = {"seconds": 0.0, "forwards": 0.0, "rows": 0.0}
    for line in text.splitlines():
        m = PROM_LINE.match(line)
        if m and f'model="{model}"' in m.group(2):
            totals[PROM_KEYS[m.group(1)]] += float(m.group(3))
    return totals


def forward_totals(path, model):
    """parse_forward_totals of a saved scrape, or None without one."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return parse_forward_totals(f.read(), model)


def load_runs(run_dir, settings, model, target, c):
    runs = []
    for r in range(1, settings["rounds"] + 1):
        base = f"{run_dir}/{model}.{target}.c{c}.r{r}"
        run = json.load(open(base + ".json"))
        before_ticks, after_ticks = map(int, open(base + ".cpu").read().split())
        # Server CPU per call over the whole client run (warm-up included).
        calls = run["calls_per_second"] * (settings["duration"] +
                                           settings["warmup"])
        run["server_us"] = ((after_ticks - before_ticks) / settings["clk_tck"] *
                            1e6 / calls if calls else 0.0)
        before = forward_totals(base + ".before.prom", model)
        after = forward_totals(base + ".after.prom", model)
        if before and after and after["forwards"] > before["forwards"]:
            seconds = after["seconds"] - before["seconds"]
            run["forward_us"] = (seconds * 1e6 /
                                 (after["forwards"] - before["forwards"]))
            run["forward_us_per_row"] = (seconds * 1e6 /
                                         (after["rows"] - before["rows"]))
        runs.append(run)
    return runs


def thr(r):
    return r["calls_per_second"]


def p50(r):
    return r["latency_us"]["p50"]


def p99(r):
    return r["latency_us"]["p99"]


def cpu(r):
    """Client + server CPU time per call, microseconds."""
    return r["client_cpu_us_per_call"] + r["server_us"]


def med(runs, f):
    return statistics.median(f(r) for r in runs)


def paired(a, b, f):
    """Median over rounds of f(b) / f(a) within each round."""
    return statistics.median(f(y) / f(x) for x, y in zip(a, b))


def print_table(header, rows):
    """Right-aligned columns, two spaces apart."""
    widths = [max(len(r[i]) for r in rows + [header])
              for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)).rstrip())


def target_text(model, c, on_off_thr, on_base_thr, on_off_p50):
    def verdict(ok):
        return "PASS" if ok else "MISS"
    if c == 1:
        return f"p50 on/off <= 1.05: {verdict(on_off_p50 <= 1.05)}"
    if c == 32 and model == "mlp-784":
        return f"on/off >= 2: {verdict(on_off_thr >= 2)}"
    if c == 32 and model == "digits":
        return f"on/base >= 0.9: {verdict(on_base_thr >= 0.9)}"
    return ""


def main():
    run_dir = sys.argv[1]
    settings = json.load(open(f"{run_dir}/settings.json"))
    cores = settings["cores"]
    rows, cost_rows, failed = [], [], 0
    for model in settings["models"]:
        for c in settings["concurrency"]:
            b, off, on = (load_runs(run_dir, settings, model, t, c)
                          for t in ("base", "off", "on"))
            failed += sum(r["failed_calls"] for r in b + off + on)
            on_off_thr = paired(off, on, thr)
            on_base_thr = paired(b, on, thr)
            on_off_p50 = paired(off, on, p50)
            rows.append((model, str(c), f"{med(b, thr):.0f}",
                         f"{med(b, p50):.0f}", f"{med(off, thr):.0f}",
                         f"{med(off, p50):.0f}", f"{med(off, p99):.0f}",
                         f"{med(on, thr):.0f}", f"{med(on, p50):.0f}",
                         f"{med(on, p99):.0f}", f"{on_off_thr:.2f}",
                         f"{on_base_thr:.2f}", f"{on_off_p50:.2f}",
                         target_text(model, c, on_off_thr, on_base_thr,
                                     on_off_p50)))
            if not all("forward_us" in r for r in off + on):
                continue
            # Once every core is busy, throughput is cores / CPU per call. A
            # batched server that cost only the transport (the baseline's
            # CPU per call) plus its batched forward passes (per row) would
            # be off cpu / (base cpu + on fwd/row) times the unbatched one.
            base_cpu = med(b, cpu)
            fwd_row = med(on, lambda r: r["forward_us_per_row"])

            def busy(runs):
                return med(runs, lambda r: cpu(r) * thr(r) / 1e6 / cores)
            cost_rows.append((
                model, str(c), f"{base_cpu:.1f}", f"{med(off, cpu):.1f}",
                f"{med(on, cpu):.1f}",
                f"{med(off, lambda r: r['forward_us']):.1f}",
                f"{fwd_row:.1f}",
                f"{med(on, lambda r: r['forward_us'] / r['forward_us_per_row']):.1f}",
                f"{busy(b):.2f} {busy(off):.2f} {busy(on):.2f}",
                f"{med(off, cpu) / (base_cpu + fwd_row):.2f}",
                f"{on_off_thr:.2f}"))

    print_table(("model", "conc", "base calls/s", "base p50", "off calls/s",
                 "off p50", "off p99", "on calls/s", "on p50", "on p99",
                 "on/off thr", "on/base thr", "on/off p50", "target"), rows)
    print(f"(latencies in us; calls/s and latencies: medians over "
          f"{settings['rounds']} rounds; ratios: median over rounds of the "
          "ratio within a round)")
    if cost_rows:
        print()
        print("Where the CPU goes (us per call):")
        print_table(("model", "conc", "base cpu", "off cpu", "on cpu",
                     "off fwd/call", "on fwd/row", "on rows/fwd",
                     f"cores busy b/off/on (of {cores})", "ideal on/off",
                     "on/off"), cost_rows)
        print("(cpu: client + server process CPU time per call; fwd: "
              "forward-pass time from the servers' own metrics, per call "
              "unbatched and per row batched; cores busy: cpu x calls/s / "
              "cores; ideal on/off = off cpu / (base cpu + on fwd/row): the "
              "gain batching would give with every core busy if the batched "
              "server cost only the transport plus its forward passes)")
    if failed:
        print(f"error: {failed} calls failed; see the per-run JSON",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
