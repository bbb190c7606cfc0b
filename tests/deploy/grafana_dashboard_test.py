"""Checks the Grafana dashboard (deploy/grafana/dashboards/nnserve.json) and
its provisioning: valid JSON, every PromQL expression parses (promtool) and
names only metrics nnserve exports, the $model variable filters every
per-model series, and the required panels exist."""

import re
import unittest

import deploy_files as files
import exported_metrics as metrics


class MetricNameExtractionTest(unittest.TestCase):
    """The checker itself: it must find real names and reject unknown ones."""

    def test_finds_names_inside_functions_and_aggregations(self):
        expr = ('histogram_quantile(0.99, sum by (model, le) (rate('
                'nnserve_layer_duration_seconds_bucket{model=~"$model", '
                'layer!="x"}[5m]))) / ignoring(le) group_left '
                'sum(up{job="nnserve"}) offset 5m')
        self.assertEqual(metrics.metric_names(expr),
                         {"nnserve_layer_duration_seconds_bucket", "up"})

    def test_reports_unknown_and_misspelled_metrics(self):
        self.assertEqual(
            metrics.unknown_metrics(
                'rate(nnserve_request_total[1m]) + nnserve_queue_length'),
            ["nnserve_queue_length", "nnserve_request_total"])
        self.assertEqual(metrics.unknown_metrics('nnserve_model_loaded_bucket'),
                         ["nnserve_model_loaded_bucket"])

    def test_accepts_histogram_suffixes_only_for_histograms(self):
        self.assertEqual(metrics.unknown_metrics(
            'nnserve_inference_duration_seconds_count + '
            'nnserve_inference_duration_seconds_sum'), [])
        self.assertEqual(metrics.base_metric("nnserve_layer_duration_seconds_bucket"),
                         "nnserve_layer_duration_seconds")

    def test_ignores_strings_and_label_values(self):
        self.assertEqual(metrics.metric_names(
            'count_values("nnserve_fake", nnserve_build_info{version="a_b"})'),
            {"nnserve_build_info"})


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dashboard = files.load_json(files.DASHBOARD)
        cls.exprs = files.dashboard_exprs(cls.dashboard)

    def test_has_identity_and_panels(self):
        self.assertTrue(self.dashboard.get("uid"), "dashboard has no uid")
        self.assertTrue(self.dashboard.get("title"), "dashboard has no title")
        self.assertGreaterEqual(len(self.exprs), 8,
                                f"only {len(self.exprs)} PromQL targets")
        ids = [p["id"] for p in self.dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)), f"duplicate panel ids: {ids}")

    def test_model_variable_queries_loaded_models(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertIn("model", variables, "no $model template variable")
        model = variables["model"]
        query = model["query"]["query"] if isinstance(model["query"], dict) \
            else model["query"]
        self.assertRegex(query, r"label_values\(nnserve_\w+.*,\s*model\)")
        self.assertTrue(model.get("multi") and model.get("includeAll"),
                        "$model should allow several models and All")

    def test_every_expression_names_only_exported_metrics(self):
        for title, expr in self.exprs:
            with self.subTest(panel=title):
                self.assertEqual(metrics.unknown_metrics(expr), [],
                                 f"panel '{title}' uses metrics nnserve does "
                                 f"not export: {expr}")

    def test_every_expression_parses(self):
        exprs = [metrics.grafana_to_promql(e) for _, e in self.exprs]
        ok, output = files.promtool_check_exprs(exprs)
        self.assertTrue(ok, f"promtool rejects a dashboard expression:\n{output}")

    def test_per_model_series_are_filtered_by_model_variable(self):
        # Every selector of a series that has a model label must filter on it.
        per_model = {n for n in metrics.EXPORTED
                     if n.startswith("nnserve_") and n != "nnserve_build_info"}
        checked = 0
        for title, expr in self.exprs:
            for m in re.finditer(r"(nnserve_\w+)(\{[^}]*\})?", expr):
                if metrics.base_metric(m.group(1)) not in per_model:
                    continue
                checked += 1
                with self.subTest(panel=title, series=m.group(0)):
                    self.assertIn('model=~"$model"', m.group(2) or "",
                                  f"panel '{title}': {m.group(0)} ignores $model")
        self.assertGreater(checked, 10)

    def test_required_panels_exist(self):
        def panel_with(pattern):
            return [t for t, e in self.exprs if re.search(pattern, e, re.S)]

        required = {
            "request rate": r"rate\(nnserve_requests_total\{",
            "error rate by code": r'by \([^)]*code[^)]*\).*code!="OK"',
            "p50 request latency":
                r"histogram_quantile\(0\.5,.*nnserve_request_duration_seconds_bucket",
            "p99 request latency":
                r"histogram_quantile\(0\.99,.*nnserve_request_duration_seconds_bucket",
            "p99 per layer": r"histogram_quantile\(0\.99, sum by \([^)]*layer[^)]*\)"
                             r".*nnserve_layer_duration_seconds_bucket",
            "inference rows/s": r"rate\(nnserve_inference_rows_total\{",
            "memory": r"process_resident_memory_bytes",
        }
        for what, pattern in required.items():
            with self.subTest(panel=what):
                self.assertTrue(panel_with(pattern),
                                f"no panel shows {what} (/{pattern}/)")

    def test_headline_panel_is_first_graph_and_full_width(self):
        graphs = [p for p in self.dashboard["panels"] if p["type"] == "timeseries"]
        first = graphs[0]
        self.assertIn("nnserve_layer_duration_seconds_bucket",
                      first["targets"][0]["expr"])
        self.assertEqual(first["gridPos"]["w"], 24)

    def test_datasource_is_the_provisioned_one(self):
        provisioned = files.load_yaml(files.DATASOURCES)["datasources"]
        uids = {d["uid"] for d in provisioned if d["type"] == "prometheus"}
        self.assertTrue(uids, "no Prometheus datasource is provisioned")
        for panel in files.dashboard_panels(self.dashboard):
            for target in panel.get("targets", []):
                with self.subTest(panel=panel["title"]):
                    self.assertIn(target["datasource"]["uid"], uids)


if __name__ == "__main__":
    unittest.main()
