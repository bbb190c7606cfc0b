"""Live test: the real `nnserve serve` (NNSERVE_BINARY) on loopback with the
example models, scraped by a real Prometheus server (Debian's `prometheus`)
that also loads deploy/prometheus/rules. Through Prometheus's HTTP API it
asserts that the target is up, that nnserve_layer_duration_seconds_bucket is
queryable for every layer of every model, that every dashboard expression is
accepted, that the headline p99-per-layer panel has a value for every layer,
and that the alert rules evaluate without error and stay quiet. Finally
SIGTERM must stop nnserve with exit code 0.

Environment: NNSERVE_BINARY (required), NNSERVE_SOURCE_DIR, NNSERVE_CLI
(optional: also drive traffic with `nnserve-cli predict`)."""

import json
import math
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import yaml

import deploy_files as files
import exported_metrics as metrics
import nnserve_grpc

SCRAPE_INTERVAL_S = 1
WAIT_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout_s=WAIT_S, interval_s=0.25):
    """Polls `predicate` (returning a truthy value when done) until timeout;
    raises AssertionError with the last value otherwise."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ValueError) as e:
            last = e
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} "
                         f"(last: {last!r})")


class PrometheusLiveTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.binary = os.environ.get("NNSERVE_BINARY")
        if not cls.binary or not os.access(cls.binary, os.X_OK):
            raise AssertionError(f"NNSERVE_BINARY={cls.binary!r} is not an executable")
        cls.prometheus_bin = files.require_tool("prometheus", "prometheus")
        cls.tmp = tempfile.TemporaryDirectory(prefix="nnserve-deploy-live-")
        cls.configs = nnserve_grpc.read_model_configs(files.MODELS)
        cls.processes = []
        try:
            cls.start_nnserve()
            cls.client = nnserve_grpc.Client(f"127.0.0.1:{cls.grpc_port}")
            cls.client.wait_serving(WAIT_S)
            cls.send_traffic()
            cls.start_prometheus()
        except BaseException:
            cls.stop_all()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.stop_all()

    @classmethod
    def stop_all(cls):
        for proc, _ in reversed(cls.processes):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        cls.processes = []
        cls.tmp.cleanup()

    @classmethod
    def spawn(cls, name, args):
        log = open(os.path.join(cls.tmp.name, f"{name}.log"), "w")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        cls.processes.append((proc, name))
        return proc

    @classmethod
    def log_tail(cls, name, lines=30):
        with open(os.path.join(cls.tmp.name, f"{name}.log")) as f:
            return "".join(f.readlines()[-lines:])

    @classmethod
    def start_nnserve(cls):
        port_file = os.path.join(cls.tmp.name, "ports")
        cls.nnserve = cls.spawn("nnserve", [
            cls.binary, "serve", "--model-repository", files.MODELS,
            "--grpc-address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0",
            # The default would bind 0.0.0.0:8000.
            "--http-address", "127.0.0.1:0",
            "--port-file", port_file, "--threads", "1"])

        def ports():
            if cls.nnserve.poll() is not None:
                raise AssertionError(f"nnserve exited with {cls.nnserve.returncode}:\n"
                                     f"{cls.log_tail('nnserve')}")
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read()
                if text.endswith("\n"):
                    return [int(p) for p in text.split()]
            return None

        # "<grpc> <metrics> <http>\n"
        cls.grpc_port, cls.metrics_port, _ = wait_for("nnserve --port-file", ports)

    @classmethod
    def send_traffic(cls, rounds=3):
        for name, config in cls.configs.items():
            rows = nnserve_grpc.input_rows(files.MODELS, name, config)
            for _ in range(rounds):
                cls.client.predict(name, rows)
        cli = os.environ.get("NNSERVE_CLI")
        sample = os.path.join(files.MODELS, "digits", "sample_input.npy")
        if cli and os.path.exists(sample):
            result = files.run([cli, "--address", f"127.0.0.1:{cls.grpc_port}",
                                "predict", "--model", "digits", "--input", sample],
                               timeout=30)
            if result.returncode != 0:
                raise AssertionError(f"nnserve-cli predict failed: {result.stderr}")

    @classmethod
    def start_prometheus(cls):
        cls.prom_port = free_port()
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                       "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
                       "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
            "rule_files": [files.ALERT_RULES],
            "scrape_configs": [{
                "job_name": "nnserve",
                "static_configs": [{"targets": [f"127.0.0.1:{cls.metrics_port}"]}],
            }],
        }
        config_path = os.path.join(cls.tmp.name, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        cls.spawn("prometheus", [
            cls.prometheus_bin, f"--config.file={config_path}",
            f"--storage.tsdb.path={os.path.join(cls.tmp.name, 'tsdb')}",
            f"--web.listen-address=127.0.0.1:{cls.prom_port}",
            "--log.level=warn"])
        wait_for("Prometheus /-/ready", lambda: cls.http(f"/-/ready").startswith(
            "Prometheus"))

    @classmethod
    def http(cls, path):
        url = f"http://127.0.0.1:{cls.prom_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    @classmethod
    def api(cls, path, **params):
        query = urllib.parse.urlencode(params)
        reply = json.loads(cls.http(f"/api/v1/{path}?{query}"))
        if reply.get("status") != "success":
            raise AssertionError(f"Prometheus API {path} {params}: {reply}")
        return reply["data"]

    @classmethod
    def query(cls, expr):
        return cls.api("query", query=expr)["result"]

    def expected_layers(self):
        return {(name, layer.name) for name, config in self.configs.items()
                for layer in config.layers}

    def test_1_target_is_up(self):
        def nnserve_up():
            targets = self.api("targets")["activeTargets"]
            return [t for t in targets if t["labels"]["job"] == "nnserve"
                    and t["health"] == "up"]
        wait_for("the nnserve target to be up", nnserve_up)
        self.assertEqual(
            [float(r["value"][1]) for r in self.query('up{job="nnserve"}')], [1.0])

    def test_2_layer_histogram_for_every_layer_of_every_model(self):
        expr = "count by (model, layer) (nnserve_layer_duration_seconds_bucket)"

        seen = {}

        def layers():
            seen["found"] = {(r["metric"]["model"], r["metric"]["layer"])
                             for r in self.query(expr)}
            return seen["found"] if self.expected_layers() <= seen["found"] else None
        try:
            wait_for("per-layer series of every model", layers)
        except AssertionError as e:
            self.fail(f"{e}: nnserve_layer_duration_seconds_bucket has (model, layer) "
                      f"{sorted(seen.get('found', []))}, expected "
                      f"{sorted(self.expected_layers())}")
        self.assertEqual(seen["found"], self.expected_layers())
        # Every exported metric is in Prometheus under its real name.
        names = set(self.api("label/__name__/values"))
        exported = {n for n in metrics.series_names()}
        self.assertEqual(sorted(exported - names), [],
                         "metrics of the contract missing from the scrape")

    def test_3_dashboard_queries_and_headline_panel(self):
        dashboard = files.load_json(files.DASHBOARD)
        exprs = files.dashboard_exprs(dashboard)
        for title, expr in exprs:
            with self.subTest(panel=title):
                self.query(metrics.grafana_to_promql(expr))  # raises on error
        # After a second round of traffic the rate is positive, so the
        # headline p99 per layer has a finite value for every layer.
        headline = [e for t, e in exprs if t == "p99 latency per layer"][0]
        before = self.query("sum(nnserve_inference_duration_seconds_count)")
        self.send_traffic()
        count = float(before[0]["value"][1]) if before else 0.0
        wait_for("Prometheus to scrape the new forward passes", lambda: float(
            self.query("sum(nnserve_inference_duration_seconds_count)")[0]["value"][1])
            > count)

        seen = {}

        def p99_per_layer():
            result = self.query(metrics.grafana_to_promql(headline))
            values = {(r["metric"]["model"], r["metric"]["layer"]): float(r["value"][1])
                      for r in result}
            seen["values"] = values
            finite = {k for k, v in values.items() if math.isfinite(v) and v > 0}
            return values if finite >= self.expected_layers() else None
        try:
            values = wait_for("a finite p99 for every layer", p99_per_layer)
        except AssertionError as e:
            self.fail(f"{e}: the headline panel gives {seen.get('values')}, expected "
                      f"a positive value for each of {sorted(self.expected_layers())}")
        for key in self.expected_layers():
            self.assertLess(values[key], 10.0, f"p99 of layer {key}")

    def test_4_alert_rules_evaluate_and_stay_quiet(self):
        def evaluated():
            groups = self.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            done = rules and all(
                not r.get("lastEvaluation", "0001").startswith("0001") for r in rules)
            return rules if done else None
        rules = wait_for("every alert rule to be evaluated", evaluated)
        self.assertEqual(sorted(r["name"] for r in rules),
                         sorted(r["alert"] for r in files.alert_rules()))
        for rule in rules:
            with self.subTest(alert=rule["name"]):
                self.assertEqual(rule["health"], "ok", rule.get("lastError"))
                self.assertEqual(rule["state"], "inactive",
                                 f"{rule['name']} is {rule['state']} on a healthy server")

    def test_5_sigterm_exits_cleanly(self):
        self.nnserve.send_signal(signal.SIGTERM)
        try:
            code = self.nnserve.wait(40)
        except subprocess.TimeoutExpired:
            self.fail("nnserve did not exit within 40 s of SIGTERM")
        self.assertEqual(code, 0, f"nnserve exit code after SIGTERM:\n"
                                  f"{self.log_tail('nnserve')}")


if __name__ == "__main__":
    unittest.main()
