"""deploy/kubernetes, rendered with `kubectl kustomize` (Debian package kubernetes-client):
the output parses, has the expected objects, and references only ConfigMaps, Secrets,
volumes and ports that exist in it — or Secrets documented as user-provided."""
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from collector.auth import Tokens, exposure_errors
from collector.config import load_config

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (Debian: apt-get install kubernetes-client)")


@pytest.fixture(scope="module")
def objs():
    r = subprocess.run([KUBECTL, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    docs = [d for d in YAML(typ="safe").load_all(io.StringIO(r.stdout)) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _one(objs, kind):
    found = [o for (k, _), o in objs.items() if k == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _container(objs):
    return _one(objs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def _configmap(objs, prefix):
    found = [o for (k, n), o in objs.items() if k == "ConfigMap" and n.startswith(prefix + "-")]
    assert len(found) == 1, f"ConfigMap {prefix}-<hash> missing"
    return found[0]


def test_expected_kinds(objs):
    kinds = sorted(k for k, _ in objs)
    assert kinds == ["ConfigMap", "ConfigMap", "Service", "Service", "StatefulSet"]


def test_statefulset_keeps_duckdb_and_the_wal_on_a_claim(objs):
    sts = _one(objs, "StatefulSet")
    spec = sts["spec"]
    assert spec["replicas"] == 1
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    c = _container(objs)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    env = {e["name"]: e for e in c["env"]}
    data = [n for n, p in mounts.items() if p == "/data"]
    assert data and data[0] in claims
    assert env["TOCSIN_STORAGE__PATH"]["value"].startswith("/data/")
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # the image's USER (a numeric UID, so runAsNonRoot can check it) is the pod's runAsUser
    user = [ln.split()[1] for ln in (REPO / "Dockerfile").read_text().splitlines() if ln.startswith("USER ")][-1]
    assert user.split(":")[0] == str(pod["securityContext"]["runAsUser"])


def test_references_resolve(objs):
    sts = _one(objs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    configmaps = {n for k, n in objs if k == "ConfigMap"}
    secrets = {n for k, n in objs if k == "Secret"}
    readme = (BASE / "README.md").read_text()
    for m in _container(objs)["volumeMounts"]:
        assert m["name"] in volumes or m["name"] in claims, f"volumeMount {m['name']} has no volume"
    for v in volumes.values():
        if "configMap" in v:
            assert v["configMap"]["name"] in configmaps, f"volume {v['name']}: ConfigMap {v['configMap']['name']}"
        if "secret" in v:
            name = v["secret"]["secretName"]
            assert name in secrets or f"`{name}`" in readme
    for e in _container(objs)["env"]:
        ref = e.get("valueFrom", {})
        if "secretKeyRef" in ref:
            name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            assert name in secrets or (f"`{name}`" in readme and f"`{key}`" in readme), \
                f"env {e['name']}: Secret {name}/{key} is neither rendered nor documented in deploy/kubernetes/README.md"
        if "configMapKeyRef" in ref:
            assert ref["configMapKeyRef"]["name"] in configmaps
    headless = objs[("Service", sts["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"


def test_services_select_the_pod_and_name_its_ports(objs):
    sts = _one(objs, "StatefulSet")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"]: p["containerPort"] for p in _container(objs)["ports"]}
    assert sorted(port_names.values()) == [4317, 4318, 9099]
    for (kind, name), svc in objs.items():
        if kind != "Service":
            continue
        assert svc["spec"]["selector"].items() <= labels.items(), f"Service {name} selects no pod"
        for p in svc["spec"]["ports"]:
            assert port_names[p["targetPort"]] == p["port"]
    assert sorted(p["port"] for p in objs[("Service", "tocsin")]["spec"]["ports"]) == [4317, 4318, 9099]


def test_config_and_rules_configmaps(objs, tmp_path):
    c = _container(objs)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in _one(objs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    mount_of = {vols[n]["configMap"]["name"]: p for n, p in mounts.items() if "configMap" in vols.get(n, {})}

    cm = _configmap(objs, "tocsin-config")
    config_path = c["args"][c["args"].index("--config") + 1]
    assert config_path == f"{mount_of[cm['metadata']['name']]}/tocsin.yaml"
    (tmp_path / "tocsin.yaml").write_text(cm["data"]["tocsin.yaml"])
    env_names = {e["name"] for e in c["env"]}
    fake_env = {n: "x" for n in env_names}
    cfg = load_config(tmp_path / "tocsin.yaml", environ={k: v for k, v in fake_env.items() if not k.startswith("TOCSIN_")})
    assert not cfg.auth.allow_unauthenticated
    assert exposure_errors(cfg, Tokens.from_config(cfg.auth, environ=fake_env)) == []
    # every secret the config reads by *_env is set by the container
    text = cm["data"]["tocsin.yaml"]
    for var in re.findall(r"_env:\s*([A-Z_][A-Z0-9_]*)", text):
        assert var in env_names, f"tocsin.yaml reads ${var}, which the StatefulSet does not set"
    from alerting.notify.integrations import build_integrations
    assert set(build_integrations(cfg.notify, environ=fake_env)) == {r.name for r in cfg.notify.receivers}

    rules = _configmap(objs, "tocsin-rules")
    assert rules["data"] == {"latency.yaml": (REPO / "rules" / "latency.yaml").read_text()}, \
        "deploy/kubernetes/rules/latency.yaml differs from rules/latency.yaml: copy it again"
    rules_dir = mount_of[rules["metadata"]["name"]]
    assert cfg.rules.files == [f"{rules_dir}/*.yaml"]
