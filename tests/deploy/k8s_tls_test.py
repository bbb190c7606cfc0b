"""Checks the Kubernetes TLS overlay (deploy/k8s-tls) against the base
without a cluster: it builds on the base, mounts the Secret as a whole
read-only volume (no subPath, so renewals reach the files nnserve re-reads),
points NNSERVE_TLS_* into that mount, and replaces every native grpc probe
(plaintext only) with an nnserve-cli exec probe over TLS on the gRPC port.
The REST port is marked HTTPS in the Service (same certificate). The base
itself stays plaintext. It also renders the
overlay (like k8s_test.py, it fails when kubectl is missing) and checks the
merged Deployment."""

import os
import re
import unittest

import yaml

import deploy_files as files

OVERLAY = os.path.join(files.DEPLOY, "k8s-tls")
CLI_SOURCE = os.path.join(files.SOURCE_DIR, "client", "cli_main.cc")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def container(deployment, name="nnserve"):
    return [c for c in deployment["spec"]["template"]["spec"]["containers"]
            if c["name"] == name][0]


def flag_value(command, flag):
    return command[command.index(flag) + 1]


class TlsOverlayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kustomization = files.load_yaml(os.path.join(OVERLAY, "kustomization.yaml"))
        cls.base = files.load_yaml(os.path.join(files.K8S, "deployment.yaml"))
        cls.patch = files.load_yaml(os.path.join(OVERLAY, "deployment-tls.yaml"))
        cls.base_container = container(cls.base)
        cls.patch_container = container(cls.patch)
        cls.env = {e["name"]: e.get("value") for e in cls.patch_container["env"]}
        cls.grpc_port = [p["containerPort"] for p in cls.base_container["ports"]
                         if p["name"] == "grpc"][0]

    def test_builds_on_the_base_and_patches_its_deployment(self):
        self.assertEqual(self.kustomization["resources"], ["../k8s"])
        patches = {p["path"]: p["target"] for p in self.kustomization["patches"]}
        self.assertEqual(patches, {
            "deployment-tls.yaml": {"kind": "Deployment",
                                    "name": self.base["metadata"]["name"]},
            "service-tls.yaml": {"kind": "Service", "name": "nnserve"}})
        self.assertEqual(self.patch["metadata"]["name"], self.base["metadata"]["name"])

    def test_base_stays_plaintext(self):
        names = [e["name"] for e in self.base_container["env"]]
        self.assertFalse([n for n in names if n.startswith("NNSERVE_TLS_")])
        for probe in PROBES:
            self.assertIn("grpc", self.base_container[probe])

    def tls_mount(self):
        volumes = {v["name"]: v for v in self.patch["spec"]["template"]["spec"]["volumes"]}
        mounts = [m for m in self.patch_container["volumeMounts"]
                  if "secret" in volumes.get(m["name"], {})]
        self.assertEqual(len(mounts), 1, "one Secret volume mount")
        return mounts[0], volumes[mounts[0]["name"]]

    def test_secret_mounted_whole_and_read_only(self):
        mount, volume = self.tls_mount()
        self.assertTrue(mount.get("readOnly"))
        self.assertNotIn("subPath", mount, "subPath mounts never see a renewed Secret")
        self.assertEqual(volume["secret"]["secretName"], "nnserve-tls")
        # Not world-readable: the private key is in there.
        self.assertEqual(volume["secret"].get("defaultMode", 0o644) & 0o007, 0)

    def test_tls_files_are_in_the_mount(self):
        mount, _ = self.tls_mount()
        for name in ("NNSERVE_TLS_CERT_FILE", "NNSERVE_TLS_KEY_FILE"):
            with self.subTest(env=name):
                self.assertTrue(self.env[name].startswith(mount["mountPath"] + "/"),
                                self.env[name])
        self.assertGreaterEqual(int(self.env["NNSERVE_TLS_RELOAD_SECONDS"]), 1)
        self.assertNotEqual(self.env["NNSERVE_TLS_CERT_FILE"],
                            self.env["NNSERVE_TLS_KEY_FILE"])

    def test_probes_are_tls_exec_probes_on_the_grpc_port(self):
        mount, _ = self.tls_mount()
        with open(CLI_SOURCE, encoding="utf-8") as f:
            cli_flags = set(re.findall(r'"(--[a-z-]+)', f.read()))
        for probe in PROBES:
            with self.subTest(probe=probe):
                spec = self.patch_container[probe]
                self.assertIn("grpc", spec, "the native grpc probe must be removed")
                self.assertIsNone(spec["grpc"])
                command = spec["exec"]["command"]
                self.assertEqual(command[0], "nnserve-cli")
                self.assertEqual(flag_value(command, "--address"),
                                 f"127.0.0.1:{self.grpc_port}")
                self.assertTrue(flag_value(command, "--tls-ca-file")
                                .startswith(mount["mountPath"] + "/"))
                self.assertIn("--tls-server-name", command)
                self.assertIn("health", command)
                for arg in command:
                    if arg.startswith("--"):
                        self.assertIn(arg, cli_flags, f"nnserve-cli has no {arg}")
        for probe in ("startupProbe", "readinessProbe"):
            command = self.patch_container[probe]["exec"]["command"]
            self.assertEqual(flag_value(command, "--service"), "nnserve.v1.Inference")

    def test_rendered_overlay(self):
        kubectl = files.require_tool("kubectl", "kubectl (Kubernetes client)")
        result = files.run([kubectl, "kustomize", OVERLAY])
        self.assertEqual(result.returncode, 0, result.stderr)
        deployment = [d for d in yaml.safe_load_all(result.stdout)
                      if d and d["kind"] == "Deployment"][0]
        c = container(deployment)
        env = {e["name"]: e.get("value") for e in c["env"]}
        self.assertEqual(env["NNSERVE_GRPC_ADDRESS"], "0.0.0.0:50051")
        self.assertIn("NNSERVE_TLS_CERT_FILE", env)
        for probe in PROBES:
            self.assertNotIn("grpc", c[probe])
            self.assertIn("exec", c[probe])
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        tls_dir = os.path.dirname(env["NNSERVE_TLS_CERT_FILE"])
        self.assertIn(tls_dir, mounts)
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes[mounts[tls_dir]["name"]]["secret"]["secretName"],
                         "nnserve-tls")
        # The base's model repository and /tmp mounts survive the patch.
        self.assertIn(env["NNSERVE_MODEL_REPOSITORY"], mounts)
        self.assertIn("/tmp", mounts)
        # REST is HTTPS now; the other Service ports are the base's.
        service = [d for d in yaml.safe_load_all(result.stdout)
                   if d and d["kind"] == "Service"][0]
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        self.assertEqual(sorted(ports), ["grpc", "http", "metrics"])
        self.assertEqual(ports["http"]["appProtocol"], "https")
        self.assertEqual(ports["http"]["targetPort"], "http")
        self.assertEqual(ports["grpc"]["appProtocol"], "kubernetes.io/h2c")
        http_port = [p["containerPort"] for p in c["ports"] if p["name"] == "http"][0]
        self.assertEqual(ports["http"]["port"], http_port)


if __name__ == "__main__":
    unittest.main()
