#!/usr/bin/python3
"""compare_configs.py: nnserve under several server configurations, in one run.

Starts one `nnserve serve` per configuration (loopback, OS-chosen ports),
then for every concurrency level runs `nnserve-cli bench` (batch 1 per call)
against each in turn for several rounds, rotating the order every round so
drift in the machine's load does not favour one configuration. Prints, per
configuration and concurrency: throughput, p50 and p99 (medians over rounds),
the client's and the server's CPU time per call, rows per forward pass (from
the server's metrics), and throughput and p50 relative to the first
configuration (paired within each round, median over rounds).

usage: compare_configs.py [options] NAME=FLAGS [NAME=FLAGS ...]
  FLAGS are extra `nnserve serve` flags, split on spaces; leading VAR=VALUE
  words set environment variables for that server, and a leading @PATH word
  runs that nnserve binary instead of --nnserve (e.g. an older build), e.g.
    '2x1=--threads 2 --intra-op-threads 1'
    '1x2-passive=OMP_WAIT_POLICY=passive --threads 1 --intra-op-threads 2'
    'before=@/tmp/old/build/server/nnserve' 'after='
options: --nnserve PATH --cli PATH --models DIR --model NAME
  --concurrency N,N,... --rounds N --duration S --warmup S
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from batching_report import med, paired, parse_forward_totals, print_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_config(text):
    """(name, env, args, binary or None) of one NAME=FLAGS argument."""
    name, _, flags = text.partition("=")
    env, args, binary = {}, [], None
    for word in flags.split():
        m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", word)
        if m and not args:
            env[m.group(1)] = m.group(2)
        elif word.startswith("@") and not args:
            binary = word[1:]
        else:
            args.append(word)
    return name, env, args, binary


class Server:
    def __init__(self, name, env, args, binary, opts, tmp):
        self.name = name
        port_file = os.path.join(tmp, f"{name}.port")
        self.log = open(os.path.join(tmp, f"{name}.log"), "w")
        # REST on loopback too (its default is 0.0.0.0:8000). Set through
        # the environment, not --http-address, so that an older build
        # (@PATH) without REST still starts; a config's VAR=VALUE wins.
        self.proc = subprocess.Popen(
            [binary or opts.nnserve, "serve", "--model-repository", opts.models,
             "--grpc-address", "127.0.0.1:0", "--metrics-address",
             "127.0.0.1:0", "--port-file", port_file] + args,
            env={**os.environ, "NNSERVE_HTTP_ADDRESS": "127.0.0.1:0", **env},
            stdout=self.log, stderr=self.log)
        for _ in range(600):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            if self.proc.poll() is not None:
                sys.exit(f"error: server {name} exited; see {self.log.name}")
            time.sleep(0.1)
        else:
            sys.exit(f"error: server {name} did not start within 60 s")
        # "<grpc> <metrics>[ <http>]" (older builds write two numbers).
        self.grpc_port, self.metrics_port = map(
            int, open(port_file).read().split()[:2])

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def batch_totals(self, model):
        """(rows, forwards) of `model` so far."""
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics").read().decode()
        totals = parse_forward_totals(text, model)
        return totals["rows"], totals["forwards"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def run_once(server, opts, c):
    rows0, fwd0 = server.batch_totals(opts.model)
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    out = subprocess.run(
        [opts.cli, "--address", f"127.0.0.1:{server.grpc_port}", "--json",
         "bench", "--model", opts.model, "--concurrency", str(c),
         "--duration", str(opts.duration), "--warmup", str(opts.warmup)],
        check=True, capture_output=True, text=True).stdout
    cpu1, t1 = server.cpu_seconds(), time.monotonic()
    rows1, fwd1 = server.batch_totals(opts.model)
    report = json.loads(out)
    calls = report["calls_per_second"] * (t1 - t0)  # warm-up included
    report["server_us"] = (cpu1 - cpu0) * 1e6 / calls if calls else 0.0
    report["rows_per_forward"] = ((rows1 - rows0) / (fwd1 - fwd0)
                                  if fwd1 > fwd0 else 0.0)
    return report


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nnserve", default=f"{ROOT}/build/server/nnserve")
    parser.add_argument("--cli", default=f"{ROOT}/build/client/nnserve-cli")
    parser.add_argument("--models", default=f"{ROOT}/models")
    parser.add_argument("--model", default="mlp-784")
    parser.add_argument("--concurrency", default="1,32",
                        type=lambda v: [int(c) for c in v.split(",")])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("configs", nargs="+", metavar="NAME=FLAGS")
    opts = parser.parse_args()

    configs = [parse_config(c) for c in opts.configs]
    names = [config[0] for config in configs]
    results = {(n, c): [] for n in names for c in opts.concurrency}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="compare-configs.") as tmp:
        servers = {}
        try:
            for name, env, args, binary in configs:
                servers[name] = Server(name, env, args, binary, opts, tmp)
            print(f"model {opts.model}, batch 1 per call, {opts.duration} s "
                  f"per run (+{opts.warmup} s warm-up), {opts.rounds} rounds; "
                  f"{os.cpu_count()} cores")
            for r in range(opts.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for c in opts.concurrency:
                    for name in order:
                        report = run_once(servers[name], opts, c)
                        failed += report["failed_calls"]
                        results[(name, c)].append(report)
        finally:
            for server in servers.values():
                server.stop()

    header = ("config", "conc", "calls/s", "p50 us", "p99 us", "client us",
              "server us", "rows/fwd", f"thr/{names[0]}", f"p50/{names[0]}")
    rows = []
    for c in opts.concurrency:
        first = results[(names[0], c)]
        for name in names:
            runs = results[(name, c)]
            rows.append((
                name, str(c), f"{med(runs, lambda x: x['calls_per_second']):.0f}",
                f"{med(runs, lambda x: x['latency_us']['p50']):.1f}",
                f"{med(runs, lambda x: x['latency_us']['p99']):.1f}",
                f"{med(runs, lambda x: x['client_cpu_us_per_call']):.1f}",
                f"{med(runs, lambda x: x['server_us']):.1f}",
                f"{med(runs, lambda x: x['rows_per_forward']):.1f}",
                f"{paired(first, runs, lambda x: x['calls_per_second']):.3f}",
                f"{paired(first, runs, lambda x: x['latency_us']['p50']):.3f}"))
    print_table(header, rows)
    print(f"(medians over {opts.rounds} rounds; client/server us: CPU time "
          "per call; ratios: median over rounds of the ratio within a round)")
    if failed:
        print(f"error: {failed} calls failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
