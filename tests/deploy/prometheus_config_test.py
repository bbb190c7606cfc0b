"""Checks deploy/prometheus/: `promtool check config`, `promtool check rules`,
the promtool unit tests of the alerts (tests/deploy/prometheus_rules_test.yml),
and that the alerts cover what operators need while naming only metrics
nnserve exports."""

import os
import unittest

import deploy_files as files
import exported_metrics as metrics


class PromtoolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.promtool = files.require_tool("promtool", "prometheus")

    def check(self, *args):
        result = files.run([self.promtool, *args])
        self.assertEqual(result.returncode, 0,
                         f"promtool {' '.join(args)} failed:\n"
                         f"{result.stdout}{result.stderr}")
        return result.stdout + result.stderr

    def test_config_is_valid_and_finds_the_rules(self):
        output = self.check("check", "config", files.PROMETHEUS_CONFIG)
        self.assertIn("1 rule files found", output)

    def test_rules_are_valid(self):
        output = self.check("check", "rules", files.ALERT_RULES)
        self.assertIn(f"{len(files.alert_rules())} rules found", output)

    def test_alert_unit_tests_pass(self):
        # rule_files in the test file are relative to the test file.
        self.check("test", "rules", files.RULES_TEST)


class AlertRulesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rules = files.alert_rules()
        cls.by_name = {r["alert"]: r for r in cls.rules if "alert" in r}

    def test_required_alerts_exist(self):
        required = {
            "error ratio": "nnserve_requests_total",
            "p99 latency over SLO": "histogram_quantile(0.99",
            "model not loaded": "nnserve_model_loaded",
            "target down": 'up{job="nnserve"} == 0',
        }
        for what, needle in required.items():
            with self.subTest(alert=what):
                self.assertTrue(
                    [n for n, r in self.by_name.items() if needle in r["expr"]],
                    f"no alert for {what} (no expr contains {needle!r})")

    def test_alerts_name_only_exported_metrics(self):
        for name, rule in self.by_name.items():
            with self.subTest(alert=name):
                self.assertEqual(metrics.unknown_metrics(rule["expr"]), [],
                                 f"alert {name} uses metrics nnserve does not export")

    def test_alerts_have_severity_summary_and_duration(self):
        for name, rule in self.by_name.items():
            with self.subTest(alert=name):
                self.assertIn(rule.get("labels", {}).get("severity"),
                              {"warning", "critical"})
                self.assertTrue(rule.get("annotations", {}).get("summary"))
                self.assertTrue(rule.get("annotations", {}).get("description"))
                self.assertTrue(rule.get("for"), f"{name} has no 'for' duration")

    def test_every_alert_is_unit_tested(self):
        tests = files.load_yaml(files.RULES_TEST)
        tested = {case["alertname"] for test in tests["tests"]
                  for case in test.get("alert_rule_test", [])
                  if case.get("exp_alerts")}
        self.assertEqual(sorted(set(self.by_name) - tested), [],
                         "alerts never seen firing in prometheus_rules_test.yml")


class ScrapeConfigTest(unittest.TestCase):
    def test_scrapes_nnserve_metrics_port_and_loads_rules(self):
        config = files.load_yaml(files.PROMETHEUS_CONFIG)
        jobs = {j["job_name"]: j for j in config["scrape_configs"]}
        self.assertIn("nnserve", jobs, "no scrape job named nnserve "
                      "(the alert rules select job=\"nnserve\")")
        job = jobs["nnserve"]
        self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        self.assertTrue(targets and all(t.endswith(":9464") for t in targets),
                        f"nnserve targets {targets} should use metrics port 9464")
        base = os.path.dirname(files.PROMETHEUS_CONFIG)
        rule_globs = [os.path.join(base, g) for g in config["rule_files"]]
        self.assertTrue(any(os.path.dirname(g) == os.path.dirname(files.ALERT_RULES)
                            for g in rule_globs),
                        f"rule_files {config['rule_files']} miss the rules folder")


if __name__ == "__main__":
    unittest.main()
