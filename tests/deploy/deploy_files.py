"""Paths of the deployment artefacts and loaders for them, shared by the
deploy tests. Read-only helpers; no state."""

import json
import os
import shutil
import subprocess
import tempfile

import yaml

SOURCE_DIR = os.environ.get("NNSERVE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SOURCE_DIR, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dashboards", "nnserve.json")
DATASOURCES = os.path.join(DEPLOY, "grafana", "provisioning", "datasources",
                           "prometheus.yml")
DASHBOARD_PROVIDERS = os.path.join(DEPLOY, "grafana", "provisioning",
                                   "dashboards", "nnserve.yml")
PROMETHEUS_CONFIG = os.path.join(DEPLOY, "prometheus", "prometheus.yml")
ALERT_RULES = os.path.join(DEPLOY, "prometheus", "rules", "nnserve.yml")
RULES_TEST = os.path.join(SOURCE_DIR, "tests", "deploy",
                          "prometheus_rules_test.yml")
COMPOSE = os.path.join(DEPLOY, "compose", "docker-compose.yml")
K8S = os.path.join(DEPLOY, "k8s")
DOCKERFILE = os.path.join(SOURCE_DIR, "Dockerfile")
MODELS = os.path.join(SOURCE_DIR, "models")


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def dashboard_panels(dashboard):
    """Every non-row panel, including those nested in collapsed rows."""
    panels = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def dashboard_exprs(dashboard):
    """[(panel title, expr)] for every PromQL target of the dashboard."""
    return [(p.get("title", "?"), t["expr"]) for p in dashboard_panels(dashboard)
            for t in p.get("targets", []) if t.get("expr")]


def alert_rules():
    """Every rule of deploy/prometheus/rules/nnserve.yml."""
    return [rule for group in load_yaml(ALERT_RULES)["groups"]
            for rule in group["rules"]]


def require_tool(name, package):
    """Absolute path of `name`; AssertionError naming the Debian package
    to install when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"'{name}' is not installed; it is required for this test "
            f"(apt-get install {package}; scripts/install-deps.sh lists it)")
    return path


def run(cmd, **kwargs):
    """Runs a command, returning CompletedProcess with text output."""
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def promtool_check_exprs(exprs):
    """Parses PromQL expressions offline with `promtool check rules` (each
    becomes a recording rule). Returns (ok, output)."""
    promtool = require_tool("promtool", "prometheus")
    rules = {"groups": [{"name": "exprs", "rules": [
        {"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
    try:
        result = run([promtool, "check", "rules", f.name])
        return result.returncode == 0, result.stdout + result.stderr
    finally:
        os.unlink(f.name)
