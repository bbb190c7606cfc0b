"""Checks deploy/compose/docker-compose.yml: it parses, every file or folder
it mounts or builds from exists, and the services agree with each other
(ports, Prometheus target, Grafana datasource and dashboard paths)."""

import os
import unittest

import deploy_files as files

COMPOSE_DIR = os.path.dirname(files.COMPOSE)


def host_path(volume):
    """The host side of a bind mount ("./x:/y:ro" or long form), or None for
    a named volume."""
    if isinstance(volume, dict):
        return volume["source"] if volume.get("type") == "bind" else None
    source = volume.split(":")[0]
    return source if source.startswith((".", "/", "~")) else None


def container_path(volume):
    if isinstance(volume, dict):
        return volume["target"]
    return volume.split(":")[1]


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = files.load_yaml(files.COMPOSE)
        cls.services = cls.compose["services"]

    def test_has_the_three_services(self):
        self.assertEqual(sorted(self.services), ["grafana", "nnserve", "prometheus"])

    def test_build_context_and_dockerfile_exist(self):
        build = self.services["nnserve"]["build"]
        context = os.path.normpath(os.path.join(COMPOSE_DIR, build["context"]))
        self.assertEqual(context, files.SOURCE_DIR)
        self.assertTrue(os.path.isfile(os.path.join(context, build["dockerfile"])))

    def test_every_bind_mount_exists(self):
        named = set(self.compose.get("volumes") or {})
        for name, service in self.services.items():
            for volume in service.get("volumes", []):
                with self.subTest(service=name, volume=volume):
                    source = host_path(volume)
                    if source is None:
                        self.assertIn(volume.split(":")[0], named,
                                      "named volume is not declared")
                        continue
                    path = os.path.normpath(os.path.join(COMPOSE_DIR, source))
                    self.assertTrue(os.path.exists(path),
                                    f"{name} mounts {source} ({path}): missing")

    def test_nnserve_publishes_rest_grpc_and_metrics_and_is_locked_down(self):
        nnserve = self.services["nnserve"]
        published = {p.split(":")[-1] for p in nnserve["ports"]}
        self.assertEqual(published, {"8000", "50051", "9464"})
        # Each published container port is the one nnserve listens on.
        env = nnserve["environment"]
        listening = {env[f"NNSERVE_{kind}_ADDRESS"].rsplit(":", 1)[1]
                     for kind in ("HTTP", "GRPC", "METRICS")}
        self.assertEqual(listening, published)
        for kind in ("HTTP", "GRPC", "METRICS"):
            self.assertTrue(env[f"NNSERVE_{kind}_ADDRESS"].startswith("0.0.0.0:"),
                            f"NNSERVE_{kind}_ADDRESS must listen beyond the container")
        self.assertTrue(nnserve.get("read_only"), "root filesystem not read-only")
        self.assertNotIn(str(nnserve.get("user", "")).split(":")[0], ("", "0", "root"))
        self.assertIn("ALL", nnserve.get("cap_drop", []))
        env = nnserve["environment"]
        repo = env["NNSERVE_MODEL_REPOSITORY"]
        self.assertIn(repo, [container_path(v) for v in nnserve["volumes"]])

    def test_prometheus_scrapes_the_nnserve_service(self):
        prometheus = self.services["prometheus"]
        mounts = {container_path(v): host_path(v) for v in prometheus["volumes"]}
        config_flag = [a for a in prometheus["command"]
                       if a.startswith("--config.file=")][0].split("=", 1)[1]
        self.assertIn(config_flag, mounts, "the --config.file is not mounted")
        mounted = os.path.normpath(os.path.join(COMPOSE_DIR, mounts[config_flag]))
        self.assertEqual(mounted, files.PROMETHEUS_CONFIG)
        # Rules: mounted next to the config where rule_files expects them.
        rules_dir = os.path.join(os.path.dirname(config_flag), "rules")
        self.assertIn(rules_dir, mounts)
        config = files.load_yaml(files.PROMETHEUS_CONFIG)
        job = [j for j in config["scrape_configs"] if j["job_name"] == "nnserve"][0]
        self.assertEqual(job["static_configs"][0]["targets"], ["nnserve:9464"])

    def test_grafana_provisioning_matches_mounts(self):
        grafana = self.services["grafana"]
        mounts = {container_path(v): host_path(v) for v in grafana["volumes"]}
        self.assertIn("/etc/grafana/provisioning", mounts)
        provider = files.load_yaml(files.DASHBOARD_PROVIDERS)["providers"][0]
        dash_dir = provider["options"]["path"]
        self.assertIn(dash_dir, mounts, "dashboard provider path is not mounted")
        host_dir = os.path.normpath(os.path.join(COMPOSE_DIR, mounts[dash_dir]))
        self.assertEqual(host_dir, os.path.dirname(files.DASHBOARD))
        home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        self.assertEqual(os.path.dirname(home), dash_dir)
        self.assertTrue(os.path.isfile(os.path.join(host_dir, os.path.basename(home))))
        datasource = files.load_yaml(files.DATASOURCES)["datasources"][0]
        self.assertEqual(datasource["url"], "http://prometheus:9090")


if __name__ == "__main__":
    unittest.main()
