"""`tocsin config check` and `tocsin notify check`: everything serve checks, every
error as `file:line:col: key: message`, exit 0 or 1 — run as the real command."""
from __future__ import annotations

from serverproc import run_tocsin

MIGRATING = "see docs/migrating-from-prometheus.md"


NO_OVERRIDES = {"TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN": None, "TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": None,
                "TOCSIN_API__LISTEN": None, "TOCSIN_STORAGE__PATH": None}


def _check(tmp_path, text: str, *cmd: str, env: dict | None = None):
    """Check ``text`` as the whole config: no environment overrides but ``env``."""
    (tmp_path / "tocsin.yaml").write_text(text)
    return run_tocsin(*(cmd or ("config", "check")), "--config", "tocsin.yaml", cwd=tmp_path,
                      env={**NO_OVERRIDES, **(env or {})})


def test_config_check_reports_every_error_in_file_order(tmp_path):
    r = _check(tmp_path, "storage:\n  pth: x\napi: {listen: nope}\naggregation: {slot: 7s, lateness: soon}\n"
                         "log: {level: verbose}\nlimits:\n  rate: {spans_per_second: -1}\n")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        'tocsin.yaml:2:3: storage.pth: unknown key; did you mean "path"? (keys of storage: backend, path, '
        "postgresql, wal, wal_dir, wal_max_size, retention, maintenance_interval; see docs/configuration.md)",
        "tocsin.yaml:3:15: api.listen: expected HOST:PORT (e.g. 127.0.0.1:4318, port 0 picks a free port), got 'nope'",
        "tocsin.yaml:4:21: aggregation.slot: slot must be a whole number of seconds that divides 60 "
        "(1s, 5s, 10s, 15s, 30s, 60s)",
        "tocsin.yaml:4:35: aggregation.lateness: 'soon' is not a duration: write e.g. 500ms, 1.5s, 2m or 1h30m",
        "tocsin.yaml:5:14: log.level: expected one of debug, info, warning, error, got 'verbose'",
        "tocsin.yaml:7:28: limits.rate.spans_per_second: must be >= 0, got -1",
    ]
    assert r.stdout == ""


def test_config_check_ok(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.yaml").write_text("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: up\n")
    r = _check(tmp_path, "rules: {files: [rules/*.yaml]}\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "tocsin.yaml: ok; 1 receiver, 1 route, 0 inhibit rules; 1 rule in 1 group from 1 rule file\n"


def test_the_repository_example_config_is_valid(tmp_path):
    """The tocsin.yaml that `make run` uses, with its rules, passes the check."""
    from serverproc import REPO

    r = run_tocsin("config", "check", "--config", str(REPO / "tocsin.yaml"), cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{REPO / 'tocsin.yaml'}: ok; ")


def test_notify_check_refuses_what_serve_refuses(tmp_path):
    """It used to say `notify ok` (exit 0) for a file serve refuses."""
    text = ("storage: {retension: 2d}\nnotify:\n  receivers:\n    - name: log\n      console: {}\n"
            "  route: {receiver: log}\n")
    r = _check(tmp_path, text, "notify", "check")
    assert r.returncode == 1
    assert r.stderr.splitlines()[0].startswith('tocsin.yaml:1:11: storage.retension: unknown key; did you mean '
                                               '"retention"?')
    assert "notify ok" not in r.stdout


def test_notify_check_and_config_check_read_the_secrets(tmp_path):
    text = ("auth:\n  read_tokens: [{token_file: /nonexistent/read-token}]\n"
            "notify:\n  receivers:\n    - name: pd\n      pagerduty:\n        routing_key_env: PD_KEY\n")
    for cmd in (("config", "check"), ("notify", "check")):
        r = _check(tmp_path, text, *cmd, env={"PD_KEY": None})
        assert r.returncode == 1
        assert r.stderr.splitlines() == [
            "tocsin.yaml:2:30: auth.read_tokens[0].token_file: cannot read /nonexistent/read-token: "
            "No such file or directory",
            "tocsin.yaml:7:26: notify.receivers[0].pagerduty.routing_key_env: environment variable PD_KEY is not "
            "set or empty; export it, or put the value in a file and give routing_key_file: PATH"]
    r = _check(tmp_path, text.replace("auth:\n  read_tokens: [{token_file: /nonexistent/read-token}]\n", ""),
               "notify", "check", env={"PD_KEY": "k"})
    assert (r.returncode, r.stdout) == (0, "tocsin.yaml: notify ok: 1 receiver, 1 route, 0 inhibit rules\n")


def test_alertmanager_style_keys_get_the_tocsin_form(tmp_path):
    text = """\
notify:
  receivers:
    - name: oncall
      slack_configs:
        - api_url: https://hooks.slack.com/services/T/B/x
    - name: chat
      slack: {webhook_url: "https://hooks.slack.com/services/T/B/x"}
    - name: pd
      pagerduty: {routing_key: abc123}
  route:
    receiver: oncall
    match: {severity: critical}
"""
    r = _check(tmp_path, text)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "tocsin.yaml:4:7: notify.receivers[0].slack_configs: unknown key; slack_configs is Alertmanager's form; a "
        "Tocsin receiver takes one mapping per kind, e.g. slack: {webhook_url_env: SLACK_WEBHOOK_URL} "
        f"({MIGRATING})",
        "tocsin.yaml:7:15: notify.receivers[1].slack.webhook_url: secrets are never written in tocsin.yaml: use "
        "webhook_url_env: VARIABLE (the environment variable that holds it) or webhook_url_file: PATH; an "
        "alertmanager.yml read through notify.alertmanager_config may hold them; see "
        "docs/migrating-from-prometheus.md",
        "tocsin.yaml:9:19: notify.receivers[2].pagerduty.routing_key: secrets are never written in tocsin.yaml: use "
        "routing_key_env: VARIABLE (the environment variable that holds it) or routing_key_file: PATH; an "
        "alertmanager.yml read through notify.alertmanager_config may hold them; see "
        "docs/migrating-from-prometheus.md",
        "tocsin.yaml:12:5: notify.route.match: unknown key; match: is Alertmanager's deprecated form; write "
        f"matchers: ['severity=\"critical\"'] ({MIGRATING})",
    ]


def test_an_alertmanager_file_pasted_at_the_top_level(tmp_path):
    r = _check(tmp_path, "route:\n  receiver: x\nreceivers:\n  - name: x\n")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"tocsin.yaml:1:1: route: unknown key; route: belongs under notify: (Tocsin keeps Alertmanager's sections "
        f"there; {MIGRATING})",
        "tocsin.yaml:4:3: receivers: this receivers: is Tocsin's OTLP receivers section (otlp, processes); "
        f"Alertmanager's list of receivers belongs under notify: ({MIGRATING})"]


def test_references_between_keys_are_located(tmp_path):
    r = _check(tmp_path, "notify:\n  receivers:\n    - name: a\n      console: {}\n  route:\n    receiver: b\n")
    assert (r.returncode, r.stderr) == (1, "tocsin.yaml:6:15: notify.route.receiver: no receiver named 'b' "
                                           "(defined: a)\n")


def test_not_yaml_is_located(tmp_path):
    r = _check(tmp_path, "storage:\n  path: [\n")
    assert r.returncode == 1
    assert r.stderr.splitlines()[0].startswith("tocsin.yaml:3:1: not valid YAML: ")


def test_no_file(tmp_path):
    r = run_tocsin("config", "check", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "tocsin: no config file to check: ./tocsin.yaml does not exist; give "
                                           "--config FILE or set TOCSIN_CONFIG\n")
    r = run_tocsin("config", "check", "--config", "missing.yaml", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "missing.yaml: cannot read the file: No such file or directory\n")


# -- client commands ---------------------------------------------------------------------
def test_client_commands_say_which_setting_points_where(tmp_path):
    dead = "http://127.0.0.1:9"   # discard port: nothing listens
    r = run_tocsin("silence", "list", cwd=tmp_path, env={"TOCSIN_URL": dead})
    assert r.returncode == 1
    assert r.stderr == (f"tocsin: cannot reach the Tocsin API at {dead}: [Errno 111] Connection refused "
                        "(from $TOCSIN_URL; --url overrides it)\n")
    r = run_tocsin("query", "up", "--url", dead, cwd=tmp_path)
    assert r.stderr == (f"tocsin query: cannot reach the Tocsin API at {dead}: [Errno 111] Connection refused "
                        "(from --url)\n")


def test_silence_list_columns_line_up(server_factory, tmp_path):
    srv = server_factory({"rules": {"files": []}})
    env = {"TOCSIN_URL": srv.api_url}
    for matcher, comment in (('alertname="CheckoutSlow"', "deploy"),
                             ('service_name=~"checkout|payments-long-name"', "maintenance window")):
        r = run_tocsin("silence", "add", matcher, "-c", comment, "-a", "ops", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
    r = run_tocsin("silence", "list", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    for col in ("STATE", "ENDS", "CREATED BY", "MATCHERS", "COMMENT"):
        at = lines[0].index(col)
        for line in lines[1:]:
            assert line[at - 2:at] == "  " and line[at] != " ", (col, lines)


def test_demo_help_shows_the_defaults(tmp_path):
    r = run_tocsin("demo", "--help", cwd=tmp_path)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for default in ("(default: 10m)", "(default: 1m)", "(default: 3m)", "(default: 20)", "(default: 1)"):
        assert default in text, (default, r.stdout)
