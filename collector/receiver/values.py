"""OTLP ``AnyValue`` → label string."""
from __future__ import annotations

import base64
import json


def any_to_str(v) -> str:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return str(v.int_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "double_value":
        return repr(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind == "array_value":
        return json.dumps([_plain(x) for x in v.array_value.values], separators=(",", ":"))
    if kind == "kvlist_value":
        return json.dumps({kv.key: _plain(kv.value) for kv in v.kvlist_value.values}, separators=(",", ":"))
    return ""


def _plain(v):
    kind = v.WhichOneof("value")
    if kind in ("array_value", "kvlist_value", "bytes_value", None):
        return any_to_str(v)
    return getattr(v, kind)
