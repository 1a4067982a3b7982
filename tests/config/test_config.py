"""Config loading: defaults, environment overrides, clear errors."""
import pytest

from collector.config import ConfigError, load_config, parse_duration


def test_defaults_bind_loopback_and_contract_ports():
    cfg = load_config(None, environ={})
    assert cfg.receivers.otlp.grpc.listen == "127.0.0.1:4317"
    assert cfg.receivers.otlp.http.listen == "127.0.0.1:4318"
    assert cfg.api.listen == "127.0.0.1:9099"
    assert cfg.storage.path == "./data/tocsin.duckdb"
    assert cfg.rules.files == ["rules/*.yaml"]


def test_environment_overrides_nested_keys(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("storage: {path: /a.duckdb}\n")
    cfg = load_config(f, environ={"TOCSIN_STORAGE__PATH": "/b.duckdb",
                                  "TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": "0.0.0.0:0",
                                  "TOCSIN_RULES__FILES": "[x.yaml, y.yaml]",
                                  "TOCSIN_AGGREGATION__SLOT": "5s"})
    assert cfg.storage.path == "/b.duckdb"
    assert cfg.receivers.otlp.http.listen == "0.0.0.0:0"
    assert cfg.rules.files == ["x.yaml", "y.yaml"]
    assert cfg.aggregation.slot == 5


def test_every_error_names_its_key(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("storage: {pth: x}\napi: {listen: nope}\naggregation: {slot: 7s, lateness: soon}\n")
    with pytest.raises(ConfigError) as e:
        load_config(f, environ={})
    text = str(e.value)
    assert "storage.pth: unknown key" in text
    assert "api.listen: expected HOST:PORT" in text
    assert "aggregation.slot: slot must be a whole number of seconds that divides 60" in text
    assert "aggregation.lateness: 'soon' is not a duration: write e.g. 500ms" in text
    assert len(e.value.errors) == 4


def test_not_yaml_and_not_a_mapping(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("a: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f, environ={})
    f.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(f, environ={})


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("10s", 10), ("5m", 300), ("1h30m", 5400),
                                          ("2d", 172800), (3, 3.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "five minutes", "5x", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_configuration_reference_is_up_to_date():
    from pathlib import Path

    from collector.configdoc import render

    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text() == render(), "run: python -m collector.configdoc > docs/configuration.md"


def test_renamed_key_keeps_working_and_warns(tmp_path, caplog):
    f = tmp_path / "t.yaml"
    f.write_text("storage: {file: /old.duckdb}\n")
    with caplog.at_level("WARNING"):
        cfg = load_config(f, environ={}, renamed={"storage.file": "storage.path"})
    assert cfg.storage.path == "/old.duckdb"
    assert "config key storage.file is deprecated, use storage.path instead" in caplog.text


def test_renamed_key_and_its_replacement_together_is_an_error(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("storage: {file: /old.duckdb, path: /new.duckdb}\n")
    with pytest.raises(ConfigError, match="storage.file: deprecated, and storage.path is also set"):
        load_config(f, environ={}, renamed={"storage.file": "storage.path"})


def test_errors_are_located_in_the_file_and_the_environment(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("storage:\n  retension: {raw: 2d}\nnotify:\n  route:\n    group_wiat: 30s\n")
    with pytest.raises(ConfigError) as e:
        load_config(f, environ={"TOCSIN_STORAGE__PATHH": "/x", "TOCSIN_API__LISTEN": "nope"})
    assert [line.split(": unknown key")[0].split(": expected")[0] for line in e.value.errors] == [
        f"{f}:2:3: storage.retension", f"{f}:5:5: notify.route.group_wiat",
        "TOCSIN_STORAGE__PATHH: storage.pathh", "TOCSIN_API__LISTEN: api.listen"]
    assert 'did you mean "retention"?' in e.value.errors[0]
    assert 'did you mean "group_wait"?' in e.value.errors[1]
    assert "did you mean TOCSIN_STORAGE__PATH?" in e.value.errors[2]


def test_variables_that_are_not_overrides_are_left_alone():
    cfg = load_config(None, environ={"TOCSIN_CONFIG": "x.yaml", "TOCSIN_URL": "http://h:9099",
                                     "TOCSIN_API_TOKEN": "t", "TOCSIN_INGEST_TOKEN": "s"})
    assert cfg.api.listen == "127.0.0.1:9099"


def test_an_empty_section_or_list_means_its_defaults(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("limits:\n  # rate: {spans_per_second: 5}\nauth:\n  read_tokens:\nnotify:\n  receivers:\n"
                 "    - name: log\n      console:\n")
    cfg = load_config(f, environ={"TOCSIN_LIMITS__MAX_CONCURRENT_REQUESTS": "8"})
    assert cfg.limits.max_concurrent_requests == 8 and cfg.limits.rate.spans_per_second == 0
    assert cfg.auth.read_tokens == [] and cfg.notify.receivers[0].console is not None
    f.write_text("storage:\n  path:\n")
    with pytest.raises(ConfigError, match=r"t.yaml:2:3: storage.path: no value given: write one, or remove "
                                          r"the key to use the default"):
        load_config(f, environ={})


def test_a_new_section_gets_positions_and_suggestions_without_code():
    """What another change adds to the config is covered by the same machinery."""
    from pydantic import BaseModel, ConfigDict, ValidationError

    from collector.configerrors import Locator, validation_errors

    class Pg(BaseModel):
        model_config = ConfigDict(extra="forbid")
        dsn_env: str | None = None
        dsn_file: str | None = None
        pool_size: int = 4

    class Root(BaseModel):
        model_config = ConfigDict(extra="forbid")
        postgresql: Pg = Pg()

    from ruamel.yaml import YAML
    text = "postgresql:\n  dsn: postgres://u:secret@h/db\n  pool_sise: 8\n"
    tree = YAML().load(text)
    with pytest.raises(ValidationError) as e:
        Root.model_validate(YAML(typ="safe").load(text))
    lines = validation_errors(e.value, Root, Locator("c.yaml", tree))
    assert lines[0].startswith("c.yaml:2:3: postgresql.dsn: unknown key; secrets are never written in the config "
                               "file: use dsn_env: VARIABLE")
    assert lines[1].startswith('c.yaml:3:3: postgresql.pool_sise: unknown key; did you mean "pool_size"?')


def test_unions_and_literals_read_plainly():
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, ValidationError
    from ruamel.yaml import YAML

    from collector.configerrors import Locator, validation_errors

    class S(BaseModel):
        model_config = ConfigDict(extra="forbid")
        backend: Literal["duckdb", "postgresql"] = "duckdb"
        size: int | str = 1

    class Root(BaseModel):
        model_config = ConfigDict(extra="forbid")
        storage: S = S()

    text = "storage:\n  backend: postgres\n  size: [1]\n"
    with pytest.raises(ValidationError) as e:
        Root.model_validate(YAML(typ="safe").load(text))
    assert validation_errors(e.value, Root, Locator("c.yaml", YAML().load(text))) == [
        "c.yaml:2:12: storage.backend: expected 'duckdb' or 'postgresql', got 'postgres'",
        "c.yaml:3:9: storage.size: expected a whole number, got a list",
        "c.yaml:3:9: storage.size: expected a string, got a list; quote it"]


def test_a_key_taking_one_config_or_a_list_reports_what_is_wrong_inside(tmp_path):
    """`slack:` takes a mapping or a list of them: an error inside either form is
    reported there, without pydantic's "expected a list" for the other form."""
    from collector.config import ConfigError, read_config

    p = tmp_path / "tocsin.yaml"
    p.write_text("notify:\n  receivers:\n    - name: a\n      slack:\n"
                 "        - {webhook_url_env: X, bogus: 1}\n        - {webhook_url_env: Y}\n")
    with pytest.raises(ConfigError) as e:
        read_config(str(p), environ={})
    assert len(e.value.errors) == 1
    assert e.value.errors[0].startswith(f"{p}:5:32: notify.receivers[0].slack[0].bogus: unknown key (keys of ")
    p.write_text("notify:\n  receivers:\n    - name: a\n      slack: 5\n")
    with pytest.raises(ConfigError) as e:
        read_config(str(p), environ={})
    assert e.value.errors == [f"{p}:4:14: notify.receivers[0].slack: expected a mapping of keys (webhook_url_env, "
                              "webhook_url_file, webhook_url, token_env, token_file, token, channel, api_url, "
                              "send_resolved, username, icon_emoji, max_alerts, timeout, title, text), got 5"]
