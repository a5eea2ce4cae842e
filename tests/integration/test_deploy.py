"""deploy/: every manifest valid against the Kubernetes schemas, the configs
they carry valid syncd configs, and the systemd unit hardened and verifiable."""

from __future__ import annotations

import asyncio
import configparser
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
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
    root = DEPLOY / "kubernetes"
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((str(path.relative_to(root)), doc))
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


def test_deployment_runs_two_probed_replicas_and_migrates_in_a_job_before_the_rollout():
    dep = by_kind("Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"][0] == "run"
    # not an init container: a rolling update would migrate beside the old replicas
    assert "initContainers" not in pod
    job = by_kind("Job")
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate"]
    assert "secretKeyRef" in {e["name"]: e for e in migrate["env"]}["SYNCD_DATABASE_URL"]["valueFrom"]
    base = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    alone = yaml.safe_load((DEPLOY / "kubernetes" / "migrate" / "kustomization.yaml").read_text())
    assert "job.yaml" in alone["resources"] and not any("migrate" in r for r in base["resources"])
    assert pod["terminationGracePeriodSeconds"] > 30  # above the default shutdown_grace
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["SYNCD_DATABASE_URL"]["valueFrom"]
    assert container["resources"]["requests"]


def test_every_image_is_syncd_set_by_each_kustomization():
    """One name in the manifests, mapped to a registry and tag by kustomize."""
    images = set()
    for _, doc in manifests():
        text = yaml.safe_dump(doc)
        images |= set(re.findall(r"\bimage: (\S+)", text))
    assert images == {"syncd"}
    for kustomization in (DEPLOY / "kubernetes").rglob("kustomization.yaml"):
        [image] = yaml.safe_load(kustomization.read_text())["images"]
        assert image["name"] == "syncd" and image["newName"] and image["newTag"], kustomization


def test_no_literal_secret_outside_the_example_secret():
    for path in (DEPLOY / "kubernetes").rglob("*.yaml"):
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


ROOT = DEPLOY.parent


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), by stage."""
    stages: list[list[str]] = []
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_the_dockerfile_is_multi_stage_slim_and_runs_as_non_root():
    build, final = dockerfile_stages()
    assert build[0].startswith("FROM python:3.11-slim AS ") and final[0] == "FROM python:3.11-slim"
    [user] = [i for i in final if i.startswith("USER ")]
    assert not user.split()[1].startswith(("0", "root"))
    assert any(i.startswith("COPY --from=") for i in final)  # wheels only, no source tree
    assert not any(i.startswith("COPY ") and "--from" not in i for i in final)


async def test_the_dockerfiles_build_steps_make_a_wheel_that_migrates_by_itself(tmp_path, empty_db_url):
    """The build stage's COPY lines and its wheel build, run here: the wheel
    built from exactly what the image copies must carry every migration and
    migrate an empty database from its own installed copy."""
    build, _ = dockerfile_stages()
    src = tmp_path / "src"
    src.mkdir()
    for instruction in build:
        if instruction.startswith("COPY "):
            *paths, _dest = instruction.split()[1:]
            for rel in paths:
                origin = ROOT / rel
                if origin.is_dir():
                    shutil.copytree(origin, src / rel, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(origin, src / rel)
    wheels = tmp_path / "wheels"
    step = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), "."]
    done = await asyncio.to_thread(subprocess.run, step, cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = wheels.glob("syncd-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = {Path(n).name for n in z.namelist() if n.startswith("syncd/_sql/")}
    assert shipped == {p.name for p in (ROOT / "sql").glob("*.sql")}
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    done = await asyncio.to_thread(subprocess.run, install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(target), "SYNCD_DATABASE_URL": empty_db_url}
    env.pop("SYNCD_CONFIG", None)
    where = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import syncd.store.migrator as m; print(m.migrations_dir())"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    migrate = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "syncd", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0,
    reason="no Docker daemon here: the build steps are tested above",
)
def test_the_image_builds():
    done = subprocess.run(
        ["docker", "build", "-q", "-t", "syncd:test", str(ROOT)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
