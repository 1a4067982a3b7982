"""deploy/compose.yaml, read statically: it parses, every mounted host path exists, Grafana
gets the provisioning files where they say, and the data source URL names the tocsin service."""
from pathlib import Path

from ruamel.yaml import YAML

from collector.auth import Tokens, exposure_errors
from collector.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
YAML_ = YAML(typ="safe")
COMPOSE = YAML_.load((DEPLOY / "compose.yaml").read_text())


def _mounts(service):
    """(host path, container path) of bind mounts; named volumes are skipped."""
    out = []
    for v in COMPOSE["services"][service].get("volumes", []):
        host, container = v.split(":")[:2]
        if host.startswith((".", "/")):
            out.append(((DEPLOY / host).resolve(), container))
        else:
            assert host in COMPOSE["volumes"], f"{service}: volume {host} is not declared"
    return out


def test_services_and_every_mounted_host_path_exists():
    assert {"tocsin", "grafana"} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["grafana"]["image"].startswith("grafana/grafana:")
    for service in COMPOSE["services"]:
        for host, _ in _mounts(service):
            assert host.exists(), f"{service}: {host} does not exist"
            assert REPO in host.parents, f"{service}: {host} is outside the repository"
    build = COMPOSE["services"]["tocsin"]["build"]
    assert ((DEPLOY / build["context"]) / build["dockerfile"]).is_file()


def test_ports_are_published_on_loopback_only():
    for service, spec in COMPOSE["services"].items():
        for p in spec.get("ports", []):
            assert p.startswith("127.0.0.1:"), f"{service}: {p} would be reachable from other machines"
    published = {int(p.split(":")[2]) for p in COMPOSE["services"]["tocsin"]["ports"]}
    assert published == {4317, 4318, 9099}


def test_grafana_provisioning_matches_the_provider_and_data_source():
    mounts = dict((c, h) for h, c in _mounts("grafana"))
    prov = REPO / "dashboards" / "provisioning"
    assert mounts["/etc/grafana/provisioning/datasources"] == prov / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == prov / "dashboards"
    provider = YAML_.load((prov / "dashboards" / "tocsin.yaml").read_text())["providers"][0]
    dash_dir = mounts[provider["options"]["path"]]
    assert sorted(p.name for p in dash_dir.glob("*.json")) == \
        ["alerts.json", "service-latency.json", "tocsin-itself.json"]
    home = COMPOSE["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dash_dir / Path(home).relative_to(provider["options"]["path"])).is_file()

    ds = YAML_.load((prov / "datasources" / "tocsin.yaml").read_text())["datasources"][0]
    host, port = ds["url"].removeprefix("http://").split(":")
    assert host in COMPOSE["services"], f"the data source points at {host}, not a compose service"
    cfg = load_config(DEPLOY / "tocsin.compose.yaml", environ={})
    assert cfg.api.listen == f"0.0.0.0:{port}"


def test_container_config_is_valid_and_is_a_loud_local_demo():
    cfg = load_config(DEPLOY / "tocsin.compose.yaml", environ={})
    tocsin = COMPOSE["services"]["tocsin"]
    assert "./tocsin.compose.yaml:/etc/tocsin/tocsin.yaml:ro" in tocsin["volumes"]
    assert cfg.storage.path.startswith("/data/") and "tocsin-data:/data" in tocsin["volumes"]
    rules_dir = dict((c, h) for h, c in _mounts("tocsin"))["/etc/tocsin/rules"]
    assert all(f.startswith("/etc/tocsin/rules/") for f in cfg.rules.files) and any(rules_dir.glob("*.yaml"))
    assert cfg.auth.allow_unauthenticated and exposure_errors(cfg, Tokens()) == []
    text = (DEPLOY / "tocsin.compose.yaml").read_text()
    assert "LOCAL DEMO ONLY" in text
    # the only place the repository allows unauthenticated listeners
    others = [p for p in (REPO / "deploy").rglob("*.yaml") if p.name != "tocsin.compose.yaml"]
    assert not any("allow_unauthenticated: true" in p.read_text() for p in others)


def test_demo_service_targets_tocsin():
    demo = COMPOSE["services"]["demo"]
    assert demo["profiles"] == ["demo"]
    target = demo["command"][demo["command"].index("--target") + 1]
    assert target == "http://tocsin:4318"


def test_postgresql_profile_points_tocsin_at_the_postgres_service():
    """`TOCSIN_BACKEND=postgresql docker compose --profile postgresql up`: the config
    (with the service's environment applied) validates and names the postgres service."""
    import re

    pg = COMPOSE["services"]["postgres"]
    assert pg["profiles"] == ["postgresql"] and pg["image"] == "postgres:15"
    assert "ports" not in pg, "PostgreSQL is reached inside the compose network only"
    tocsin = COMPOSE["services"]["tocsin"]
    assert tocsin["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    env = {k: re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), str(v)) for k, v in tocsin["environment"].items()}
    assert env["TOCSIN_STORAGE__BACKEND"] == "duckdb"                     # the default stays DuckDB
    env["TOCSIN_STORAGE__BACKEND"] = "postgresql"
    cfg = load_config(DEPLOY / "tocsin.compose.yaml", environ=env)
    assert cfg.storage.backend == "postgresql" and cfg.storage.postgresql.dsn_env == "TOCSIN_PG_DSN"
    dsn = env[cfg.storage.postgresql.dsn_env]
    user = pg["environment"]["POSTGRES_USER"]
    assert dsn.startswith(f"postgresql://{user}:") and dsn.endswith(f"@postgres:5432/{pg['environment']['POSTGRES_DB']}")
    assert env["TOCSIN_STORAGE__WAL_DIR"].startswith("/data/")         # on the tocsin-data volume
    assert "postgres-data" in COMPOSE["volumes"]
