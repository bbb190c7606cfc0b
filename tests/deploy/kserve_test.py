"""Checks the KServe serving runtime (deploy/kserve) without a cluster: the
fields KServe requires of a ClusterServingRuntime (supported model format,
protocol versions, one container named kserve-container with one port, "h2c"
for gRPC), that every NNSERVE_* variable it sets is a flag of `nnserve serve`
and that the ports agree with them, that it declares only protocols nnserve
serves, the probes (exec nnserve-cli, which Knative accepts), the security
context, and that the example InferenceService selects the runtime. Renders
the kustomization with `kubectl kustomize` when kubectl is installed (the
test is skipped, saying so, when it is not)."""

import os
import re
import shutil
import unittest
from urllib.parse import urlparse

import yaml

import deploy_files as files

KSERVE = os.path.join(files.DEPLOY, "kserve")
RUNTIME = os.path.join(KSERVE, "clusterservingruntime.yaml")
ISVC = os.path.join(KSERVE, "inferenceservice.yaml")
SERVER_MAIN = os.path.join(files.SOURCE_DIR, "server", "main.cc")
CLI_SOURCE = os.path.join(files.SOURCE_DIR, "client", "cli_main.cc")
OIP_PROTO = os.path.join(files.SOURCE_DIR, "proto", "inference",
                         "open_inference_grpc.proto")

# KServe's protocol versions (serving.kserve.io InferenceServiceProtocol).
KSERVE_PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
# Kubernetes' default terminationGracePeriodSeconds; a ServingRuntime cannot
# set another, so nnserve's whole shutdown must fit in it.
DEFAULT_GRACE_SECONDS = 30
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts storageUri


def server_env_names():
    with open(SERVER_MAIN, encoding="utf-8") as f:
        return set(re.findall(r'envname\("(NNSERVE_[A-Z0-9_]+)"\)', f.read()))


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def memory_bytes(quantity):
    units = {"Mi": 1 << 20, "Gi": 1 << 30}
    return int(quantity[:-2]) * units[quantity[-2:]]


class KServeRuntimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.runtime = files.load_yaml(RUNTIME)
        cls.isvc = files.load_yaml(ISVC)
        cls.kustomization = files.load_yaml(os.path.join(KSERVE, "kustomization.yaml"))
        cls.spec = cls.runtime["spec"]
        cls.container = cls.spec["containers"][0]
        cls.env = {e["name"]: e for e in cls.container["env"]}
        cls.values = {n: e.get("value") for n, e in cls.env.items()}

    def test_kind_and_api_version(self):
        self.assertEqual(self.runtime["apiVersion"], "serving.kserve.io/v1alpha1")
        self.assertEqual(self.runtime["kind"], "ClusterServingRuntime")
        self.assertEqual(self.runtime["metadata"]["name"], "nnserve")
        self.assertNotIn("namespace", self.runtime["metadata"], "cluster-scoped")

    def test_supported_model_format(self):
        formats = self.spec["supportedModelFormats"]
        self.assertEqual([f["name"] for f in formats], ["nnserve"])
        self.assertEqual(formats[0]["version"], "1")
        self.assertIs(formats[0]["autoSelect"], True)

    def test_declares_only_protocols_nnserve_serves(self):
        protocols = self.spec["protocolVersions"]
        self.assertTrue(protocols, "protocolVersions is empty")
        self.assertLessEqual(set(protocols), KSERVE_PROTOCOLS)
        self.assertIn("grpc-v2", protocols)
        self.assertTrue(os.path.exists(OIP_PROTO),
                        "grpc-v2 declared but nnserve has no inference.GRPCInferenceService")
        self.assertNotIn("v1", protocols, "nnserve does not serve KServe V1")
        self.assertNotIn("grpc-v1", protocols, "nnserve does not serve KServe V1")
        if "v2" in protocols:
            self.assertTrue("NNSERVE_HTTP_ADDRESS" in server_env_names(),
                            "v2 (REST) declared but nnserve has no HTTP binding")

    def test_one_container_named_as_kserve_requires(self):
        self.assertEqual(len(self.spec["containers"]), 1)
        self.assertEqual(self.container["name"], "kserve-container")
        self.assertEqual(self.container["image"], "nnserve")
        self.assertEqual(self.container["args"], ["serve"])

    def test_env_names_are_server_flags(self):
        known = server_env_names()
        self.assertIn("NNSERVE_GRPC_ADDRESS", known, "server/main.cc parse failed")
        for name in self.env:
            with self.subTest(env=name):
                self.assertTrue(name.startswith("NNSERVE_"), name)
                self.assertTrue(name in known, f"nnserve serve has no {name} (server/main.cc)")

    def test_model_repository_is_the_storage_mount(self):
        self.assertEqual(self.values["NNSERVE_MODEL_REPOSITORY"], MODEL_MOUNT)

    def test_single_h2c_port_is_the_grpc_port(self):
        ports = self.container["ports"]
        self.assertEqual(len(ports), 1, "KServe/Knative expose one container port")
        self.assertEqual(ports[0]["name"], "h2c", "gRPC needs the port named h2c")
        self.assertEqual(ports[0].get("protocol", "TCP"), "TCP")
        self.assertEqual(ports[0]["containerPort"],
                         port_of(self.values["NNSERVE_GRPC_ADDRESS"]))
        self.assertTrue(self.values["NNSERVE_GRPC_ADDRESS"].startswith("0.0.0.0:"))

    def test_metrics_annotations_match_metrics_address(self):
        annotations = self.spec["annotations"]
        self.assertEqual(int(annotations["prometheus.kserve.io/port"]),
                         port_of(self.values["NNSERVE_METRICS_ADDRESS"]))
        self.assertEqual(annotations["prometheus.kserve.io/path"], "/metrics")
        self.assertNotEqual(port_of(self.values["NNSERVE_METRICS_ADDRESS"]),
                            port_of(self.values["NNSERVE_GRPC_ADDRESS"]))

    def test_threads_follow_this_containers_cpu_limit(self):
        ref = self.env["NNSERVE_THREADS"]["valueFrom"]["resourceFieldRef"]
        self.assertEqual(ref["containerName"], self.container["name"])
        self.assertEqual(ref["resource"], "limits.cpu")

    def test_probes_are_exec_health_checks_on_the_grpc_port(self):
        with open(CLI_SOURCE, encoding="utf-8") as f:
            cli_flags = set(re.findall(r'"(--[a-z-]+)', f.read()))
        grpc_port = port_of(self.values["NNSERVE_GRPC_ADDRESS"])
        for probe in ("readinessProbe", "livenessProbe"):
            with self.subTest(probe=probe):
                spec = self.container[probe]
                # Knative rejects grpc probes and reduces tcp/http ones to its
                # own probing of the serving port.
                self.assertEqual(set(spec) & {"grpc", "httpGet", "tcpSocket"}, set())
                command = spec["exec"]["command"]
                self.assertEqual(command[0], "nnserve-cli")
                self.assertEqual(command[command.index("--address") + 1],
                                 f"127.0.0.1:{grpc_port}")
                self.assertIn("health", command)
                for arg in command:
                    if arg.startswith("--"):
                        self.assertIn(arg, cli_flags, f"nnserve-cli has no {arg}")
        readiness = self.container["readinessProbe"]["exec"]["command"]
        self.assertEqual(readiness[readiness.index("--service") + 1],
                         "nnserve.v1.Inference",
                         "readiness must wait for the models (Inference service health)")

    def test_security_context_and_resources(self):
        sc = self.container["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        self.assertEqual(sc["runAsUser"], 10001)
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertFalse(sc.get("privileged", False))
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        resources = self.container["resources"]
        for kind in ("requests", "limits"):
            self.assertIn("cpu", resources[kind])
            self.assertIn("memory", resources[kind])
        self.assertLess(int(self.values["NNSERVE_MAX_MEMORY_BYTES"]),
                        memory_bytes(resources["limits"]["memory"]))

    def test_writable_tmp_on_a_read_only_root(self):
        mounts = {m["mountPath"]: m["name"] for m in self.container["volumeMounts"]}
        self.assertIn("/tmp", mounts)
        volumes = {v["name"]: v for v in self.spec["volumes"]}
        self.assertIn("emptyDir", volumes[mounts["/tmp"]])
        self.assertNotIn(MODEL_MOUNT, mounts, "KServe mounts the model storage itself")

    def test_shutdown_fits_the_default_grace_period(self):
        drain = float(self.values["NNSERVE_DRAIN_SECONDS"])
        timeout = float(self.values["NNSERVE_SHUTDOWN_TIMEOUT"])
        self.assertGreater(drain, 0, "no time for endpoints to move away")
        self.assertLess(drain + timeout, DEFAULT_GRACE_SECONDS)

    def test_example_inference_service_selects_the_runtime(self):
        self.assertEqual(self.isvc["apiVersion"], "serving.kserve.io/v1beta1")
        self.assertEqual(self.isvc["kind"], "InferenceService")
        model = self.isvc["spec"]["predictor"]["model"]
        self.assertIn(model["modelFormat"]["name"],
                      [f["name"] for f in self.spec["supportedModelFormats"]])
        self.assertIn(model["protocolVersion"], self.spec["protocolVersions"])
        self.assertEqual(model.get("runtime", "nnserve"), self.runtime["metadata"]["name"])
        uri = urlparse(model["storageUri"])
        self.assertIn(uri.scheme, {"pvc", "s3", "gs", "https", "hdfs", "webhdfs"})
        self.assertTrue(uri.netloc and uri.path.strip("/"), model["storageUri"])
        # The URI names a repository directory, not a model directory: no
        # shipped model's name as its last component.
        self.assertNotIn(os.path.basename(uri.path.rstrip("/")),
                         os.listdir(files.MODELS))
        # The model container comes from the runtime, unchanged.
        self.assertNotIn("ports", model)
        self.assertNotIn("image", model)

    def test_kustomization_lists_both(self):
        self.assertEqual(sorted(self.kustomization["resources"]),
                         ["clusterservingruntime.yaml", "inferenceservice.yaml"])

    def test_rendered_kustomization(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed (apt-get install kubectl); "
                          "the YAML checks above still ran")
        result = files.run([kubectl, "kustomize", KSERVE])
        self.assertEqual(result.returncode, 0, result.stderr)
        objects = {d["kind"]: d for d in yaml.safe_load_all(result.stdout) if d}
        self.assertEqual(sorted(objects), ["ClusterServingRuntime", "InferenceService"])
        container = objects["ClusterServingRuntime"]["spec"]["containers"][0]
        self.assertEqual(container["image"], "nnserve:latest",
                         "the images: entry must reach the runtime's container")
        self.assertEqual(container["name"], "kserve-container")
        for obj in objects.values():
            self.assertEqual(obj["metadata"]["labels"]["app.kubernetes.io/name"], "nnserve")


if __name__ == "__main__":
    unittest.main()
