"""Renders the Kubernetes base with `kubectl kustomize deploy/k8s` and checks
the objects: gRPC health probes, security context, named ports (grpc, http
for REST, metrics) that the env, the Service and the scrape annotations
agree on, the model repository volume, and the HorizontalPodAutoscaler's
target. Fails when kubectl is missing."""

import unittest

import yaml

import deploy_files as files


def render():
    kubectl = files.require_tool("kubectl", "kubectl (Kubernetes client)")
    result = files.run([kubectl, "kustomize", files.K8S])
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {files.K8S} failed:\n{result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


class KustomizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects = render()
        cls.by_kind = {}
        for obj in cls.objects:
            cls.by_kind.setdefault(obj["kind"], []).append(obj)
        cls.deployment = cls.one("Deployment")
        cls.pod = cls.deployment["spec"]["template"]
        cls.container = [c for c in cls.pod["spec"]["containers"]
                         if c["name"] == "nnserve"][0]
        cls.ports = {p["name"]: p["containerPort"] for p in cls.container["ports"]}

    @classmethod
    def one(cls, kind):
        objects = cls.by_kind.get(kind, [])
        if len(objects) != 1:
            raise AssertionError(f"expected one {kind}, rendered {len(objects)}")
        return objects[0]

    def test_renders_expected_objects(self):
        self.assertEqual(sorted(self.by_kind),
                         ["Deployment", "HorizontalPodAutoscaler",
                          "PodDisruptionBudget", "Service"])

    def test_named_grpc_http_and_metrics_ports(self):
        self.assertEqual(self.ports, {"grpc": 50051, "http": 8000, "metrics": 9464})
        env = {e["name"]: e.get("value") for e in self.container["env"]}
        self.assertEqual(env["NNSERVE_GRPC_ADDRESS"], "0.0.0.0:50051")
        self.assertEqual(env["NNSERVE_HTTP_ADDRESS"], "0.0.0.0:8000")
        self.assertEqual(env["NNSERVE_METRICS_ADDRESS"], "0.0.0.0:9464")
        for port in self.container["ports"]:
            self.assertEqual(port.get("protocol", "TCP"), "TCP")

    def test_grpc_health_probes(self):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            with self.subTest(probe=probe):
                spec = self.container.get(probe)
                self.assertIsNotNone(spec, f"no {probe}")
                self.assertIn("grpc", spec, f"{probe} is not a native grpc probe")
                self.assertEqual(spec["grpc"]["port"], self.ports["grpc"])
        self.assertEqual(self.container["readinessProbe"]["grpc"].get("service"),
                         "nnserve.v1.Inference",
                         "readiness must follow the Inference service's health")
        startup = self.container["startupProbe"]
        self.assertGreaterEqual(startup["periodSeconds"] * startup["failureThreshold"],
                                60, "startup probe allows < 60 s for model loading")

    def test_security_context(self):
        pod_sc = self.pod["spec"]["securityContext"]
        sc = self.container["securityContext"]
        self.assertTrue(pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot"))
        self.assertNotEqual(pod_sc.get("runAsUser", sc.get("runAsUser")), 0)
        for c in self.pod["spec"]["containers"] + self.pod["spec"].get("initContainers", []):
            with self.subTest(container=c["name"]):
                csc = c["securityContext"]
                self.assertTrue(csc["readOnlyRootFilesystem"])
                self.assertFalse(csc["allowPrivilegeEscalation"])
                self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
                self.assertIn("requests", c["resources"])
                self.assertIn("limits", c["resources"])
        self.assertFalse(self.pod["spec"].get("automountServiceAccountToken", True))

    def test_model_repository_volume(self):
        env = {e["name"]: e.get("value") for e in self.container["env"]}
        mounts = {m["mountPath"]: m for m in self.container["volumeMounts"]}
        repo = env["NNSERVE_MODEL_REPOSITORY"]
        self.assertIn(repo, mounts, "NNSERVE_MODEL_REPOSITORY is not a mounted volume")
        self.assertTrue(mounts[repo].get("readOnly"))
        volumes = {v["name"] for v in self.pod["spec"]["volumes"]}
        for c in self.pod["spec"]["containers"] + self.pod["spec"].get("initContainers", []):
            for m in c.get("volumeMounts", []):
                self.assertIn(m["name"], volumes, f"{c['name']} mounts unknown {m}")
        self.assertIn("/tmp", mounts, "read-only root needs a writable /tmp")

    def test_scrape_annotations_match_metrics_port(self):
        annotations = self.pod["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(int(annotations["prometheus.io/port"]), self.ports["metrics"])
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")

    def test_service_selects_pods_and_targets_named_ports(self):
        service = self.one("Service")
        labels = self.pod["metadata"]["labels"]
        for key, value in service["spec"]["selector"].items():
            self.assertEqual(labels.get(key), value, f"selector {key}={value}")
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        self.assertEqual(sorted(ports), ["grpc", "http", "metrics"])
        for name, port in ports.items():
            self.assertEqual(port["targetPort"], name)
            # Callers use the same numbers inside and outside the cluster.
            self.assertEqual(port["port"], self.ports[name])
        self.assertEqual(ports["grpc"]["appProtocol"], "kubernetes.io/h2c")
        self.assertEqual(ports["http"]["appProtocol"], "http")
        selector = self.deployment["spec"]["selector"]["matchLabels"]
        for key, value in selector.items():
            self.assertEqual(labels.get(key), value)

    def test_hpa_scales_the_deployment_on_cpu(self):
        hpa = self.one("HorizontalPodAutoscaler")
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]),
                         ("Deployment", self.deployment["metadata"]["name"]))
        self.assertLessEqual(2, hpa["spec"]["minReplicas"])
        self.assertLess(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
        resources = [m["resource"]["name"] for m in hpa["spec"]["metrics"]
                     if m["type"] == "Resource"]
        self.assertIn("cpu", resources)
        self.assertIn("cpu", self.container["resources"]["requests"],
                      "CPU utilization needs a CPU request")
        self.assertNotIn("replicas", self.deployment["spec"],
                         "replicas in the Deployment fights the HPA")

    def test_graceful_shutdown_window(self):
        # Kubernetes sends SIGKILL after the grace period: it must cover the
        # drain (endpoints and balancers move away while calls are served)
        # and the time accepted calls get to finish.
        env = {e["name"]: e.get("value") for e in self.container["env"]}
        drain = int(env["NNSERVE_DRAIN_SECONDS"])
        self.assertGreater(drain, 0, "no time for endpoints to move away")
        self.assertGreater(self.pod["spec"]["terminationGracePeriodSeconds"],
                           drain + int(env["NNSERVE_SHUTDOWN_TIMEOUT"]))

    def test_memory_quota_fits_the_memory_limit(self):
        env = {e["name"]: e.get("value") for e in self.container["env"]}
        limit = self.container["resources"]["limits"]["memory"]
        units = {"Mi": 1 << 20, "Gi": 1 << 30}
        limit_bytes = int(limit[:-2]) * units[limit[-2:]]
        self.assertLess(int(env["NNSERVE_MAX_MEMORY_BYTES"]), limit_bytes)


if __name__ == "__main__":
    unittest.main()
