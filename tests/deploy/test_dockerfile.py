"""The Dockerfile, read statically (no Docker engine here): stages, user, volume, ports,
health check, and that the container's configuration loads and refuses to expose itself
without tokens."""
from pathlib import Path

import pytest

from collector.auth import Tokens, exposure_errors
from collector.config import load_config
from dockerfile import dockerignored, env_of, parse, read_dockerignore

REPO = Path(__file__).resolve().parents[2]
INSTRS = parse((REPO / "Dockerfile").read_text())
LAST = max(i.stage for i in INSTRS)


def final(cmd):
    return [i for i in INSTRS if i.stage == LAST and i.cmd == cmd]


def test_multi_stage_builder_and_slim_runtime():
    froms = [i.words() for i in INSTRS if i.cmd == "FROM"]
    assert len(froms) == 2
    assert froms[0][-2:] == ["AS", "builder"]
    args = {i.args.split("=")[0]: i.args.split("=")[1] for i in INSTRS if i.cmd == "ARG" and "=" in i.args}
    runtime = froms[1][0].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
    assert runtime == "python:3.11-slim"
    copies = final("COPY")
    assert any("--from=builder" in c.args for c in copies)
    assert not any(i.cmd == "RUN" and "apt-get install" in i.args for i in INSTRS if i.stage == LAST), \
        "compilers belong in the builder stage only"


def test_runs_as_a_non_root_user():
    users = final("USER")
    assert users, "no USER in the runtime stage"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "a numeric non-root UID lets Kubernetes check runAsNonRoot"


def test_volume_ports_and_storage_env():
    assert final("VOLUME")[0].words() == ["/data"]
    assert sorted(int(p) for i in final("EXPOSE") for p in i.args.split()) == [4317, 4318, 9099]
    env = env_of(INSTRS, LAST)
    assert env["TOCSIN_STORAGE__PATH"] == "/data/tocsin.duckdb"
    assert env["TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN"] == "0.0.0.0:4317"
    assert env["TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN"] == "0.0.0.0:4318"
    assert env["TOCSIN_API__LISTEN"] == "0.0.0.0:9099"
    assert env["MALLOC_MMAP_THRESHOLD_"].isdigit() and env["MALLOC_TRIM_THRESHOLD_"].isdigit()


def test_healthcheck_probes_ready_with_python_only():
    hc = final("HEALTHCHECK")
    assert len(hc) == 1
    words = hc[0].args.split(" CMD ", 1)
    assert len(words) == 2, "HEALTHCHECK without CMD"
    cmd = __import__("json").loads(words[1])
    assert cmd[:2] == ["python", "-c"] and "/-/ready" in cmd[2] and "urllib" in cmd[2]
    compile(cmd[2], "healthcheck", "exec")
    assert "curl" not in hc[0].args and "wget" not in hc[0].args


def test_entrypoint_runs_serve():
    assert final("ENTRYPOINT")[0].words() == ["tocsin"]
    assert final("CMD")[0].words() == ["serve"]


def test_copied_sources_exist_and_are_not_dockerignored():
    patterns = read_dockerignore(REPO / ".dockerignore")
    for i in INSTRS:
        if i.cmd != "COPY" or "--from=" in i.args:
            continue
        *sources, _dest = i.words()
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: not in the repository"
            assert not dockerignored(src.rstrip("/"), patterns), f"COPY {src}: excluded by .dockerignore"
    for junk in (".venv", ".git", "data/tocsin.duckdb", "tests/store/test_duckdb_store.py",
                 "collector/__pycache__/cli.cpython-311.pyc"):
        assert dockerignored(junk, patterns), f"{junk} would be sent to the Docker daemon"


def test_the_image_configuration_refuses_to_listen_without_tokens():
    """The image's tocsin.yaml with the image's ENV: valid, and (listening on 0.0.0.0 with no
    tokens) refused until tokens or auth.allow_unauthenticated are given."""
    env = {k: v.replace("$PATH", "") for k, v in env_of(INSTRS, LAST).items()}
    cfg = load_config(REPO / "tocsin.yaml", environ=env)
    assert cfg.storage.path == "/data/tocsin.duckdb" and cfg.api.listen == "0.0.0.0:9099"
    assert len(exposure_errors(cfg, Tokens())) == 3
    allowed = load_config(REPO / "tocsin.yaml", environ={**env, "TOCSIN_AUTH__ALLOW_UNAUTHENTICATED": "true"})
    assert exposure_errors(allowed, Tokens()) == []


@pytest.mark.parametrize("name", ["Dockerfile", ".dockerignore"])
def test_files_end_with_a_newline(name):
    assert (REPO / name).read_text().endswith("\n")
