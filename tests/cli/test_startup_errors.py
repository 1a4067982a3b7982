"""What an operator sees when `tocsin serve` cannot start: the real command, the
exact first line of its error, exit status 2, no traceback (unless --debug)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from serverproc import ServerProcess, run_tocsin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from spans import exporter, send_spans  # noqa: E402

NOT_STARTED = 2


def _serve(tmp_path, config_text: str, env: dict | None = None, *extra):
    (tmp_path / "tocsin.yaml").write_text(config_text)
    return run_tocsin("serve", "--config", "tocsin.yaml", *extra, cwd=tmp_path, env=env, timeout=90)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def _error_lines(r) -> list[str]:
    """stderr without the log lines written before the failure (store migrations, ...)."""
    return [line for line in r.stderr.splitlines() if not LOG_LINE.match(line)]


def _first_line(r) -> str:
    lines = _error_lines(r)
    assert lines, f"no error output (exit {r.returncode}); stderr:\n{r.stderr}"
    return lines[0]


# -- ports -----------------------------------------------------------------------------
LISTENERS = [("grpc", "receivers.otlp.grpc.listen", "TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN", "OTLP/gRPC"),
             ("http", "receivers.otlp.http.listen", "TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN", "OTLP/HTTP"),
             ("api", "api.listen", "TOCSIN_API__LISTEN", "the API")]


@pytest.mark.parametrize("attr,key,env,what", LISTENERS, ids=[x[0] for x in LISTENERS])
def test_a_second_server_on_a_taken_port_does_not_start(server_factory, tmp_path, attr, key, env, what):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = server_factory({"rules": {"files": []}}, workdir=tmp_path / "a")
    taken = getattr(first, attr)
    r = _serve(tmp_path / "b", "rules: {files: []}\n", {env: taken})
    assert r.returncode == NOT_STARTED, r.stderr
    assert _first_line(r) == (f"tocsin: cannot listen for {what} on {taken}: address already in use "
                              f"(is another Tocsin running?); move it with {key} in the config or {env} "
                              "(port 0 picks a free port)")
    assert len(_error_lines(r)) == 1 and "Traceback" not in r.stderr


def test_two_servers_never_split_one_grpc_port(server_factory, tmp_path):
    """gRPC sets SO_REUSEPORT by default: the second server used to start on the same
    port and take half the spans. Now it refuses, and every span reaches the first."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = server_factory({"rules": {"files": []}}, workdir=tmp_path / "a")
    second = ServerProcess(tmp_path / "b", {"rules": {"files": []}},
                           env={"TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN": first.grpc})
    with pytest.raises(RuntimeError, match="cannot listen for OTLP/gRPC"):
        second.start(timeout=60)
    assert second.proc is None or second.proc.wait(30) == NOT_STARTED
    for _ in range(10):   # a new connection each time: the kernel would spread them over both, were there two
        send_spans(exporter("grpc", first.grpc), "checkout", [0.05, 0.06, 0.07])
    with first.client() as c:
        body = c.get("/api/v1/query", params={"query": "sum(traces_span_metrics_calls_total)"}).json()
    assert float(body["data"]["result"][0]["value"][1]) == 30


def test_receiver_processes_share_only_with_their_own_workers(server_factory, tmp_path):
    """receivers.processes > 1 shares the ports with this server's workers (SO_REUSEPORT),
    never with another server that also asks to share."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = server_factory({"rules": {"files": []}, "receivers": {"processes": 2}}, workdir=tmp_path / "a")
    r = _serve(tmp_path / "b", "rules: {files: []}\nreceivers: {processes: 2}\n",
               {"TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": first.http})
    assert r.returncode == NOT_STARTED, r.stderr
    assert _first_line(r).startswith(f"tocsin: cannot listen for OTLP/HTTP on {first.http}: address already in use")


# -- secrets ---------------------------------------------------------------------------
SLACK_CONFIG = """\
rules: {files: []}
notify:
  receivers:
    - name: console
      console: {}
    - name: oncall
      slack: {webhook_url_env: SLACK_WEBHOOK_URL}
  route:
    receiver: console
"""


def test_a_slack_receiver_whose_variable_is_not_exported(tmp_path):
    r = _serve(tmp_path, SLACK_CONFIG, {"SLACK_WEBHOOK_URL": None})
    assert r.returncode == NOT_STARTED
    assert _first_line(r) == ("tocsin.yaml:7:32: notify.receivers[1].slack.webhook_url_env: environment variable "
                              "SLACK_WEBHOOK_URL is not set or empty; export it, or put the value in a file and "
                              "give webhook_url_file: PATH")
    assert "Traceback" not in r.stderr and len(_error_lines(r)) == 1


def test_debug_shows_the_traceback(tmp_path):
    r = _serve(tmp_path, SLACK_CONFIG, {"SLACK_WEBHOOK_URL": None}, "--debug")
    assert r.returncode == NOT_STARTED
    assert _first_line(r) == "Traceback (most recent call last):"
    assert r.stderr.splitlines()[-1].startswith("tocsin.yaml:7:32: notify.receivers[1].slack.webhook_url_env:")


# -- config errors ---------------------------------------------------------------------
def test_a_misspelt_key_says_where_and_what_was_meant(tmp_path):
    r = _serve(tmp_path, "rules: {files: []}\nstorage:\n  retension: {raw: 2d}\n")
    assert r.returncode == NOT_STARTED
    assert _first_line(r) == ('tocsin.yaml:3:3: storage.retension: unknown key; did you mean "retention"? '
                              "(keys of storage: backend, path, postgresql, wal, wal_dir, wal_max_size, retention, "
                              "maintenance_interval; "
                              "see docs/configuration.md)")


def test_a_misspelt_environment_override_names_the_variable(tmp_path):
    r = _serve(tmp_path, "rules: {files: []}\n", {"TOCSIN_STORAGE__PATHH": "/tmp/x.duckdb"})
    assert r.returncode == NOT_STARTED
    assert _first_line(r) == ("TOCSIN_STORAGE__PATHH: storage.pathh: unknown key; did you mean "
                              "TOCSIN_STORAGE__PATH? (keys of storage: backend, path, postgresql, wal, wal_dir, wal_max_size, "
                              "retention, maintenance_interval; "
                              "see docs/configuration.md)")


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path):
    r = _serve(tmp_path, "rules: {files: []}\n", {"TOCSIN_API__LISTEN": "9099"})
    assert r.returncode == NOT_STARTED
    assert _first_line(r) == ("TOCSIN_API__LISTEN: api.listen: expected HOST:PORT (e.g. 127.0.0.1:4318, port 0 "
                              "picks a free port), got 9099")


def test_a_section_with_everything_commented_out_means_its_defaults(server_factory, tmp_path):
    (tmp_path / "tocsin.yaml").write_text("rules: {files: []}\nlimits:\n  # rate: {spans_per_second: 100}\n"
                                          "auth:\nnotify:\n  receivers:\n    - name: log\n      console:\n")
    r = run_tocsin("config", "check", "--config", "tocsin.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("tocsin.yaml: ok; 1 receiver, 1 route")


def test_a_rule_file_error_at_start_is_located(tmp_path):
    (tmp_path / "rules.yaml").write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        exp: up\n")
    r = _serve(tmp_path, "rules: {files: [rules.yaml]}\n")
    assert r.returncode == NOT_STARTED
    assert _error_lines(r)[:2] == [
        'rules.yaml:4:9: group "g", rule 1 "A": an alerting rule needs exactly one of `expr:`, `latency:` or `slo:`',
        'rules.yaml:5:9: group "g", rule 1 "A": unknown key "exp" in a rule; did you mean "expr"? known keys: alert, '
        'record, expr, for, keep_firing_for, labels, annotations, latency, slo']
    assert "Traceback" not in r.stderr


def test_exposed_without_tokens_is_one_line(tmp_path):
    r = _serve(tmp_path, "rules: {files: []}\n", {"TOCSIN_API__LISTEN": "0.0.0.0:0"})
    assert r.returncode == NOT_STARTED
    assert _error_lines(r) == [
        "tocsin: refusing to start: api.listen is 0.0.0.0:0, reachable from other machines, but auth.read_tokens "
        "is empty: add tokens, bind to 127.0.0.1, or set auth.allow_unauthenticated: true"]


def test_a_storage_path_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("")
    r = _serve(tmp_path, "rules: {files: []}\n", {"TOCSIN_STORAGE__PATH": str(tmp_path / "file" / "t.duckdb")})
    assert r.returncode == NOT_STARTED
    assert _error_lines(r) == [f"tocsin: cannot use storage.path {tmp_path}/file/t.duckdb: File exists: "
                               f"{tmp_path}/file; point storage.path (or TOCSIN_STORAGE__PATH) at a writable place"]


def test_an_endpoint_that_is_not_a_url_is_refused(tmp_path):
    r = _serve(tmp_path, "rules: {files: []}\nself_telemetry:\n  traces_endpoint: otel-collector\n")
    assert r.returncode == NOT_STARTED
    assert _error_lines(r) == ["tocsin.yaml:3:20: self_telemetry.traces_endpoint: expected an http:// or https:// "
                               "URL such as http://otel-collector:4318, or empty for off; got 'otel-collector'"]
