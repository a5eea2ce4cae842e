"""deploy/: every manifest valid against the Kubernetes schemas, the configs
they carry valid syncd configs, and the systemd unit hardened and verifiable."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from syncd import config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30"
CRDS = {"monitoring.coreos.com/v1"}


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_manifest_is_valid_kubernetes(name, doc):
    if doc["apiVersion"] in CRDS or doc["kind"] == "Kustomization":
        assert doc["metadata"]["name"] if "metadata" in doc else doc["resources"]
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def by_kind(kind: str) -> dict:
    [doc] = [d for _, d in manifests() if d["kind"] == kind]
    return doc


def test_deployment_runs_two_probed_replicas_after_migrating():
    dep = by_kind("Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"][0] == "run"
    assert [c["args"][0] for c in pod["initContainers"]] == ["migrate"]
    assert pod["terminationGracePeriodSeconds"] > 30  # above the default shutdown_grace
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["SYNCD_DATABASE_URL"]["valueFrom"]
    assert container["resources"]["requests"]


def test_no_literal_secret_outside_the_example_secret():
    for path in (DEPLOY / "kubernetes").glob("*.yaml"):
        if path.name == "secret.example.yaml":
            continue
        text = path.read_text()
        assert "stringData" not in text and "postgresql://" not in text, path.name


def test_the_configmap_carries_a_valid_syncd_config():
    cm = by_kind("ConfigMap")
    cfg = config.from_dict(tomllib.loads(cm["data"]["syncd.toml"]), source="configmap")
    assert cfg.providers[0].token_file.startswith("/var/run/secrets/syncd/")
    mounted = {
        m["mountPath"]
        for m in by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert "/var/run/secrets/syncd" in mounted


def test_the_systemd_example_config_is_valid():
    cfg = config.from_dict(tomllib.loads((DEPLOY / "systemd" / "syncd.toml.example").read_text()))
    assert "${CREDENTIALS_DIRECTORY}" in cfg.providers[0].token_file


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / "syncd.service")
    return parser


def test_the_systemd_unit_is_notify_watchdog_and_hardened():
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["DynamicUser"] == "yes"
    assert "LoadCredential" in service
    assert "syncd run" in service["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    # the real ExecStart points into /opt/syncd, absent here: verify a copy using /bin/true
    text = (DEPLOY / "systemd" / "syncd.service").read_text()
    text = text.replace("/opt/syncd/bin/syncd", "/bin/true")
    copy = tmp_path / "syncd.service"
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "syncd.service" in line
        and "Failed to" not in line
        and "/etc/syncd" not in line
        and "postgresql.service" not in line
    ]
    assert result.returncode == 0 and not problems, result.stderr
