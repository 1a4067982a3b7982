import pytest
from pydantic import ValidationError

from alerting.notify.config import NotifyConfig, format_errors
from collector.durations import parse_duration
from alerting.notify.integrations import build_integrations
from alerting.notify.matchers import parse_matcher, parse_matchers
from alerting.notify.routing import build_tree
from collector.secrets import SecretError


def errors(data):
    with pytest.raises(ValidationError) as e:
        NotifyConfig.model_validate(data)
    return format_errors(e.value)


def test_empty_config_is_valid_with_console_receiver():
    cfg = NotifyConfig()
    assert [r.name for r in cfg.receivers] == ["console"]
    assert cfg.route.receiver == "console"
    assert cfg.resolve_max_age == 24 * 3600
    tree = build_tree(cfg.route)
    assert (tree.group_wait, tree.group_interval, tree.repeat_interval) == (30, 300, 4 * 3600)


def test_route_to_unknown_receiver_names_the_key():
    msgs = errors({"receivers": [{"name": "team", "console": {}}],
                   "route": {"receiver": "team", "routes": [{"receiver": "nobody", "matchers": ['a="b"']}]}})
    assert any("route.routes[0].receiver: no receiver named 'nobody'" in m for m in msgs), msgs


def test_unknown_keys_and_bad_matchers_are_errors():
    msgs = errors({"route": {"recever": "x"}})
    assert any(m.startswith("notify.route.recever") for m in msgs), msgs
    msgs = errors({"route": {"routes": [{"matchers": ['service_name=~"(unclosed"']}]}})
    assert any("notify.route.routes[0].matchers[0]" in m and "regular expression" in m for m in msgs), msgs


def test_slack_needs_one_mode_and_receivers_need_an_integration():
    msgs = errors({"receivers": [{"name": "s", "slack": {"channel": "#x"}}]})
    assert any("notify.receivers[0].slack" in m for m in msgs), msgs
    msgs = errors({"receivers": [{"name": "s"}]})
    assert any("receivers[0]" in m and "at least one" in m for m in msgs), msgs


def test_several_receivers_need_a_root_receiver():
    msgs = errors({"receivers": [{"name": "a", "console": {}}, {"name": "b", "console": {}}]})
    assert any("route.receiver: required" in m for m in msgs), msgs


def test_missing_secret_names_the_key_not_the_value():
    cfg = NotifyConfig.model_validate({"receivers": [{"name": "pd", "pagerduty": {"routing_key_env": "PD_KEY"}}]})
    with pytest.raises(SecretError, match=r"notify.receivers\[0\].pagerduty.routing_key_env: .*PD_KEY"):
        build_integrations(cfg, environ={})
    assert build_integrations(cfg, environ={"PD_KEY": "k"})["pd"][0].name == "pagerduty"


def test_secret_from_file(tmp_path):
    f = tmp_path / "hook"
    f.write_text("https://hooks.slack.com/services/T/B/X\n")
    cfg = NotifyConfig.model_validate({"receivers": [{"name": "s", "slack": {"webhook_url_file": str(f)}}]})
    assert build_integrations(cfg, environ={})["s"][0].name == "slack"


def test_matchers():
    m = parse_matcher('service_name=~"checkout|pay"')
    assert m.matches({"service_name": "pay"}) and not m.matches({"service_name": "payment"})
    assert parse_matcher('severity!="page"').matches({})
    assert not parse_matcher("severity!~pa.e").matches({"severity": "page"})
    assert [str(x) for x in parse_matchers('{a="b, c", d!=e}')] == ['a="b, c"', 'd!="e"']
    with pytest.raises(ValueError):
        parse_matcher("no operator")


def test_durations():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration(10) == 10
    for bad in ("", "5 minutes", "m5", "-1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_route_tree_inherits_and_continues():
    cfg = NotifyConfig.model_validate({
        "receivers": [{"name": n, "console": {}} for n in ("default", "pager", "team")],
        "route": {"receiver": "default", "group_by": ["alertname"], "group_wait": "10s", "routes": [
            {"receiver": "pager", "matchers": ['severity="page"'], "continue": True, "group_interval": "1m"},
            {"receiver": "team", "matchers": ['service_name=~"checkout|pay"'], "group_by": ["..."]},
        ]}})
    tree = build_tree(cfg.route)
    hit = tree.match({"alertname": "X", "severity": "page", "service_name": "pay"})
    assert [r.receiver for r in hit] == ["pager", "team"]
    assert hit[0].group_wait == 10 and hit[0].group_interval == 60 and hit[0].group_by == ("alertname",)
    assert hit[1].group_by is None
    assert [r.receiver for r in tree.match({"alertname": "X"})] == ["default"]
