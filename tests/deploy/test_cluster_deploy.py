"""The cluster's deployment files, read statically (no container engine or
Kubernetes here): deploy/compose-cluster.yaml, deploy/haproxy.cfg (checked by the
real haproxy where installed; tests/cluster runs it) and the Kubernetes overlay
deploy/kubernetes-cluster (rendered with `kubectl kustomize`)."""
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from collector.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = YAML(typ="safe").load((DEPLOY / "compose-cluster.yaml").read_text())
REPLICAS = ["tocsin-1", "tocsin-2", "tocsin-3"]


def _env(service: str) -> dict:
    env = COMPOSE["services"][service]["environment"]
    return {k: re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), str(v)) for k, v in env.items()}


def test_compose_has_postgres_haproxy_three_replicas_and_grafana():
    assert set(REPLICAS) | {"postgres", "haproxy", "grafana"} <= set(COMPOSE["services"])
    for name in REPLICAS:
        svc = COMPOSE["services"][name]
        assert svc["depends_on"]["postgres"] == {"condition": "service_healthy"}
        mounts = [v.split(":") for v in svc["volumes"]]
        data = [m for m in mounts if m[1] == "/data"]
        assert data == [[f"{name}-data", "/data"]], f"{name}: its own volume for its write-ahead log"
        for host, *_ in mounts:
            if host.startswith("."):
                assert (DEPLOY / host).exists(), host
    published = {p for s in COMPOSE["services"].values() for p in s.get("ports", [])}
    assert all(p.startswith("127.0.0.1:") for p in published), published
    assert {p for p in COMPOSE["services"]["haproxy"]["ports"]} == \
        {"127.0.0.1:4317:4317", "127.0.0.1:4318:4318", "127.0.0.1:9099:9099"}
    assert "ports" not in COMPOSE["services"]["postgres"]


def test_every_replica_config_validates_as_a_cluster_member_with_its_own_id():
    ids = set()
    for name in REPLICAS:
        svc = COMPOSE["services"][name]
        env = _env(name)
        cfg = load_config(DEPLOY / "tocsin.compose.yaml", environ=env)
        assert cfg.cluster.enabled and cfg.storage.backend == "postgresql" and cfg.self_alerts.enabled
        assert cfg.storage.wal_dir.startswith("/data/")
        assert env[cfg.storage.postgresql.dsn_env].endswith("@postgres:5432/tocsin")
        ids.add(cfg.cluster.replica_id or svc["hostname"])
    assert ids == set(REPLICAS)


def test_haproxy_config_is_mounted_names_every_replica_and_grafana_reaches_the_api_through_it():
    mount = COMPOSE["services"]["haproxy"]["volumes"][0].split(":")
    assert (DEPLOY / mount[0]).resolve() == DEPLOY / "haproxy.cfg"
    text = (DEPLOY / "haproxy.cfg").read_text()
    for backend, port in (("otlp_http", 4318), ("otlp_grpc", 4317), ("api", 9099)):
        block = text.split(f"\nbackend {backend}\n")[1].split("\nbackend ")[0]
        assert [ln.split()[1:3] for ln in block.splitlines() if ln.strip().startswith("server")] == \
            [[r, f"{r}:{port}"] for r in REPLICAS]
    assert "bind :4317 proto h2" in text and "check-proto h1" in text
    assert "http-check send meth GET uri /-/ready" in text
    ds = YAML(typ="safe").load((REPO / "dashboards/provisioning/datasources/tocsin.yaml").read_text())["datasources"][0]
    assert ds["url"] == "http://tocsin:9099" and "tocsin" in COMPOSE["services"]["haproxy"]["networks"]["default"]["aliases"]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (apt-get install haproxy)")
def test_haproxy_accepts_the_shipped_config():
    r = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True)
    assert r.returncode == 0 and "Configuration file is valid" in r.stdout + r.stderr, r.stdout + r.stderr


KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def overlay():
    if KUBECTL is None:
        pytest.skip("kubectl not installed (Debian: apt-get install kubernetes-client)")
    r = subprocess.run([KUBECTL, "kustomize", str(DEPLOY / "kubernetes-cluster")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    docs = [d for d in YAML(typ="safe").load_all(io.StringIO(r.stdout)) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_overlay_runs_three_replicas_each_with_a_volume_and_its_pod_name_as_id(overlay):
    sts = overlay[("StatefulSet", "tocsin")]
    assert sts["spec"]["replicas"] == 3
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    data = [m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/data"]
    assert data and data[0] in claims                       # a volume per replica
    env = {e["name"]: e for e in c["env"]}
    assert env["TOCSIN_CLUSTER__ENABLED"]["value"] == "true"
    assert env["TOCSIN_STORAGE__BACKEND"]["value"] == "postgresql"
    assert env["TOCSIN_CLUSTER__REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["TOCSIN_STORAGE__WAL_DIR"]["value"].startswith("/data/")
    dsn = env["TOCSIN_PG_DSN"]["valueFrom"]["secretKeyRef"]
    readme = (DEPLOY / "kubernetes-cluster" / "README.md").read_text()
    assert f"`{dsn['name']}`" in readme and f"`{dsn['key']}`" in readme    # a documented user-provided Secret
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    # the config the pods run validates as a cluster member
    cm = next(o for (k, n), o in overlay.items() if k == "ConfigMap" and n.startswith("tocsin-config-"))
    fake = {e: "x" for e in env if not e.startswith("TOCSIN_")}
    fake.update({k: v["value"] for k, v in env.items() if k.startswith("TOCSIN_") and "value" in v})
    fake["TOCSIN_CLUSTER__REPLICA_ID"] = "tocsin-0"
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "tocsin.yaml").write_text(cm["data"]["tocsin.yaml"])
        cfg = load_config(Path(d) / "tocsin.yaml", environ=fake)
    assert cfg.cluster.enabled and cfg.storage.backend == "postgresql" and cfg.self_alerts.enabled


def test_overlay_has_a_disruption_budget_for_the_pods(overlay):
    pdb = overlay[("PodDisruptionBudget", "tocsin")]
    labels = overlay[("StatefulSet", "tocsin")]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
