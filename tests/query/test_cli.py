import argparse

from collector.query import cli


def test_table_formats():
    data = {"resultType": "vector", "result": [
        {"metric": {"__name__": "up", "job": "a"}, "value": [1, "1"]},
        {"metric": {"service_name": "x"}, "histogram": [1, {"count": "3", "sum": "1.5", "buckets": []}]}]}
    lines = cli.format_table(data)
    assert lines[0].startswith('up{job="a"}') and lines[0].endswith("  1")
    assert "histogram count=3 sum=1.5" in lines[1]
    assert cli.format_table({"resultType": "scalar", "result": [1, "2"]}) == ["2"]
    assert cli.format_table({"resultType": "vector", "result": []}) == ["(no data)"]


def test_register_and_unreachable_server(capsys):
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers())
    args = p.parse_args(["query", "1+1", "--url", "http://127.0.0.1:9", "--time", "10"])
    assert args.func(args) == 2
    assert "cannot reach" in capsys.readouterr().err
