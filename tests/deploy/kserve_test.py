"""Checks the KServe serving runtime (deploy/kserve) without a cluster: the
fields KServe requires of a ClusterServingRuntime (supported model format,
protocol versions v2 and grpc-v2, one container named kserve-container), the
port convention of KServe's own two-protocol runtimes (Triton, MLServer: REST
on 8080, which KServe routes when no port is declared, gRPC on 9000, no
ports in the runtime; a grpc-v2 InferenceService declares the gRPC port
named "h2c"), that every NNSERVE_* variable it sets is a flag of `nnserve
serve` and that the ports agree with them, that it declares only protocols
nnserve serves, the probes (exec nnserve-cli, which Knative accepts), the
security context, and that the example InferenceServices (REST and gRPC)
select the runtime. Renders the kustomization with `kubectl kustomize` when
kubectl is installed (the test is skipped, saying so, when it is not)."""

import os
import re
import shutil
import unittest
from urllib.parse import urlparse

import yaml

import deploy_files as files

KSERVE = os.path.join(files.DEPLOY, "kserve")
RUNTIME = os.path.join(KSERVE, "clusterservingruntime.yaml")
ISVC = os.path.join(KSERVE, "inferenceservice.yaml")            # REST (v2)
ISVC_GRPC = os.path.join(KSERVE, "inferenceservice-grpc.yaml")  # grpc-v2
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
# KServe's runtimes that speak both bindings (kserve-tritonserver,
# kserve-mlserver): HTTP on 8080, the port KServe and Knative route when the
# container declares none; gRPC on 9000.
KSERVE_HTTP_PORT = 8080
KSERVE_GRPC_PORT = 9000


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
        cls.isvc_grpc = files.load_yaml(ISVC_GRPC)
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
        self.assertEqual(sorted(protocols), ["grpc-v2", "v2"])
        self.assertTrue(os.path.exists(OIP_PROTO),
                        "grpc-v2 declared but nnserve has no inference.GRPCInferenceService")
        self.assertIn("NNSERVE_HTTP_ADDRESS", server_env_names(),
                      "v2 (REST) declared but nnserve has no HTTP binding")
        # Both bindings are on: each has a listen address in the container.
        self.assertTrue(self.values.get("NNSERVE_HTTP_ADDRESS"), "v2 without REST")
        self.assertTrue(self.values.get("NNSERVE_GRPC_ADDRESS"), "grpc-v2 without gRPC")

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

    def test_ports_follow_kserves_two_protocol_runtimes(self):
        # No container port: KServe routes HTTP 8080 by default (v2); a
        # grpc-v2 InferenceService adds its h2c port, and a port declared
        # here would be merged with it into two, which Knative refuses.
        self.assertNotIn("ports", self.container)
        self.assertEqual(port_of(self.values["NNSERVE_HTTP_ADDRESS"]), KSERVE_HTTP_PORT)
        self.assertEqual(port_of(self.values["NNSERVE_GRPC_ADDRESS"]), KSERVE_GRPC_PORT)
        for name in ("NNSERVE_HTTP_ADDRESS", "NNSERVE_GRPC_ADDRESS",
                     "NNSERVE_METRICS_ADDRESS"):
            self.assertTrue(self.values[name].startswith("0.0.0.0:"),
                            f"{name} must listen on the pod's address")

    def test_metrics_annotations_match_metrics_address(self):
        annotations = self.spec["annotations"]
        self.assertEqual(int(annotations["prometheus.kserve.io/port"]),
                         port_of(self.values["NNSERVE_METRICS_ADDRESS"]))
        self.assertEqual(annotations["prometheus.kserve.io/path"], "/metrics")
        ports = [port_of(self.values[f"NNSERVE_{kind}_ADDRESS"])
                 for kind in ("METRICS", "GRPC", "HTTP")]
        self.assertEqual(len(set(ports)), 3, f"ports collide: {ports}")

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

    def check_inference_service(self, isvc, protocol):
        self.assertEqual(isvc["apiVersion"], "serving.kserve.io/v1beta1")
        self.assertEqual(isvc["kind"], "InferenceService")
        model = isvc["spec"]["predictor"]["model"]
        self.assertIn(model["modelFormat"]["name"],
                      [f["name"] for f in self.spec["supportedModelFormats"]])
        self.assertEqual(model["protocolVersion"], protocol)
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
        self.assertNotIn("image", model)
        return model

    def test_rest_inference_service_uses_the_default_http_port(self):
        model = self.check_inference_service(self.isvc, "v2")
        self.assertNotIn("ports", model, "v2 is served on the default port 8080")

    def test_grpc_inference_service_routes_the_grpc_port_as_h2c(self):
        model = self.check_inference_service(self.isvc_grpc, "grpc-v2")
        ports = model["ports"]
        self.assertEqual(len(ports), 1, "KServe/Knative route one container port")
        self.assertEqual(ports[0]["name"], "h2c", "gRPC needs the port named h2c")
        self.assertEqual(ports[0].get("protocol", "TCP"), "TCP")
        self.assertEqual(ports[0]["containerPort"],
                         port_of(self.values["NNSERVE_GRPC_ADDRESS"]))
        self.assertNotEqual(self.isvc_grpc["metadata"]["name"],
                            self.isvc["metadata"]["name"])

    def test_kustomization_lists_both(self):
        self.assertEqual(sorted(self.kustomization["resources"]),
                         ["clusterservingruntime.yaml", "inferenceservice-grpc.yaml",
                          "inferenceservice.yaml"])

    def test_rendered_kustomization(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed (apt-get install kubectl); "
                          "the YAML checks above still ran")
        result = files.run([kubectl, "kustomize", KSERVE])
        self.assertEqual(result.returncode, 0, result.stderr)
        objects = [d for d in yaml.safe_load_all(result.stdout) if d]
        self.assertEqual(sorted(o["kind"] for o in objects),
                         ["ClusterServingRuntime", "InferenceService", "InferenceService"])
        runtime = [o for o in objects if o["kind"] == "ClusterServingRuntime"][0]
        container = runtime["spec"]["containers"][0]
        self.assertEqual(container["image"], "nnserve:latest",
                         "the images: entry must reach the runtime's container")
        self.assertEqual(container["name"], "kserve-container")
        protocols = sorted(o["spec"]["predictor"]["model"]["protocolVersion"]
                           for o in objects if o["kind"] == "InferenceService")
        self.assertEqual(protocols, ["grpc-v2", "v2"])
        for obj in objects:
            self.assertEqual(obj["metadata"]["labels"]["app.kubernetes.io/name"], "nnserve")


if __name__ == "__main__":
    unittest.main()
