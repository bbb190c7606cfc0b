"""Tests of bench/batching_report.py on a synthetic run directory whose
numbers are chosen so every reported figure is known in advance."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT = os.path.join(ROOT, "bench", "batching_report.py")

SETTINGS = {"rounds": 2, "models": ["mlp-784"], "concurrency": [32],
            "duration": 2.0, "warmup": 0.5, "clk_tck": 100, "cores": 2}
RUN_SECONDS = SETTINGS["duration"] + SETTINGS["warmup"]


def write_run(run_dir, target, round_, calls_per_second, p50, client_us,
              server_us, forward=None, failed=0):
    """One run: `forward` is (forwards, rows, seconds) added to the metrics."""
    base = os.path.join(run_dir, f"mlp-784.{target}.c32.r{round_}")
    with open(base + ".json", "w") as f:
        json.dump({"calls_per_second": calls_per_second,
                   "latency_us": {"p50": p50, "p99": 2 * p50},
                   "client_cpu_us_per_call": client_us,
                   "failed_calls": failed}, f)
    ticks = round(server_us * 1e-6 * calls_per_second * RUN_SECONDS *
                  SETTINGS["clk_tck"])
    with open(base + ".cpu", "w") as f:
        f.write(f"1000 {1000 + ticks}\n")
    if forward is None:
        return
    forwards, rows, seconds = forward
    labels = '{model="mlp-784",version="1"}'
    other = '{model="digits",version="1"}'

    def scrape(path, k):
        with open(path, "w") as f:
            f.write("# TYPE nnserve_inference_duration_seconds histogram\n")
            f.write(f'nnserve_inference_duration_seconds_bucket{labels[:-1]},le="+Inf"}} {k * forwards}\n')
            f.write(f"nnserve_inference_duration_seconds_sum{labels} {k * seconds}\n")
            f.write(f"nnserve_inference_duration_seconds_count{labels} {k * forwards}\n")
            f.write(f"nnserve_inference_rows_total{labels} {k * rows}\n")
            # Another model's series must not be counted.
            f.write(f"nnserve_inference_duration_seconds_sum{other} 99\n")
            f.write(f"nnserve_inference_duration_seconds_count{other} 99\n")
            f.write(f"nnserve_inference_rows_total{other} 99\n")

    scrape(base + ".before.prom", 1)
    scrape(base + ".after.prom", 2)


def make_run_dir(run_dir, failed=0):
    with open(os.path.join(run_dir, "settings.json"), "w") as f:
        json.dump(SETTINGS, f)
    for r in (1, 2):
        write_run(run_dir, "base", r, 40000, 900, client_us=20, server_us=30)
        calls = 16000 * RUN_SECONDS
        write_run(run_dir, "off", r, 16000, 2000, client_us=30, server_us=90,
                  forward=(calls, calls, calls * 50e-6), failed=failed)
        calls = 20000 * RUN_SECONDS
        write_run(run_dir, "on", r, 20000, 1600, client_us=30, server_us=60,
                  forward=(calls / 8, calls, calls * 20e-6))


def run_report(run_dir):
    return subprocess.run([sys.executable, REPORT, run_dir],
                          capture_output=True, text=True)


def table_row(output, header_word):
    """The mlp-784 row of the table that follows the header containing
    `header_word`, split into words."""
    lines = output.splitlines()
    start = next(i for i, l in enumerate(lines) if header_word in l)
    return next(l.split() for l in lines[start + 1:] if l.split()[:1] == ["mlp-784"])


class BatchingReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with tempfile.TemporaryDirectory() as d:
            make_run_dir(d)
            cls.result = run_report(d)

    def test_exits_0_without_failed_calls(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)

    def test_throughput_table_and_target(self):
        row = table_row(self.result.stdout, "base calls/s")
        # model conc base thr base p50 off thr off p50 off p99 on thr on p50
        # on p99 on/off on/base on/off-p50 target...
        self.assertEqual(row[:10], ["mlp-784", "32", "40000", "900", "16000",
                                    "2000", "4000", "20000", "1600", "3200"])
        self.assertEqual(row[10:13], ["1.25", "0.50", "0.80"])
        self.assertIn("on/off >= 2: MISS", self.result.stdout)

    def test_cpu_accounting_and_ideal_ratio(self):
        row = table_row(self.result.stdout, "ideal on/off")
        # base cpu = 20 + 30; off = 30 + 90; on = 30 + 60; forward 50 us per
        # unbatched call, 20 us per batched row, 8 rows per forward;
        # cores busy = cpu x calls/s / 2 cores; ideal = 120 / (50 + 20).
        self.assertEqual(row[:8], ["mlp-784", "32", "50.0", "120.0", "90.0",
                                   "50.0", "20.0", "8.0"])
        self.assertEqual(row[8:11], ["1.00", "0.96", "0.90"])
        self.assertEqual(row[11:], ["1.71", "1.25"])

    def test_failed_calls_exit_1(self):
        with tempfile.TemporaryDirectory() as d:
            make_run_dir(d, failed=3)
            result = run_report(d)
        self.assertEqual(result.returncode, 1)
        self.assertIn("6 calls failed", result.stderr)


if __name__ == "__main__":
    unittest.main()
