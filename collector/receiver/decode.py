"""OTLP/HTTP bodies → protobuf messages: media type, Content-Encoding (streamed,
never inflated past a hard limit), protobuf or OTLP JSON."""
from __future__ import annotations

import base64
import json
import zlib

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from collector.receiver.errors import BadRequest, TooLarge, UnsupportedMediaType

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA = {"application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF, "application/json": JSON}
_CHUNK = 256 * 1024

# OTLP JSON writes these ids as hex; the proto3 JSON mapping wants base64.
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def media_type(content_type: str | None) -> str:
    """``PROTOBUF`` or ``JSON`` from a Content-Type header; parameters are ignored."""
    mt = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = _MEDIA.get(mt)
    if fmt is None:
        raise UnsupportedMediaType(f"unsupported Content-Type {mt or '(none)'!r}: "
                                   f"send application/x-protobuf or application/json")
    return fmt


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding (gzip, deflate, identity). Output is produced in
    bounded chunks, so a compression bomb stops at ``limit`` bytes → TooLarge."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        if len(body) > limit:
            raise TooLarge(f"body is {len(body)} bytes, limit {limit}")
        return body
    if enc in ("gzip", "x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS, limit, "gzip")
    if enc == "deflate":
        try:
            return _inflate(body, zlib.MAX_WBITS, limit, "deflate")
        except BadRequest:
            # Some clients send raw deflate without the zlib header.
            return _inflate(body, -zlib.MAX_WBITS, limit, "deflate")
    raise UnsupportedMediaType(f"unsupported Content-Encoding {enc!r}: send gzip, deflate or identity")


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    out = bytearray()
    d = zlib.decompressobj(wbits)
    try:
        while True:
            room = limit - len(out)
            chunk = d.decompress(data, min(_CHUNK, room + 1))
            out += chunk
            if len(out) > limit:
                raise TooLarge(f"decompressed body is over the limit of {limit} bytes")
            data = d.unconsumed_tail
            if d.eof:
                if d.unused_data and wbits > 16:   # another gzip member follows
                    data, d = d.unused_data, zlib.decompressobj(wbits)
                    continue
                break
            if not chunk and not data:
                break
    except zlib.error as e:
        raise BadRequest(f"cannot decompress {name} body: {e}") from None
    if not d.eof:
        raise BadRequest(f"cannot decompress {name} body: truncated stream")
    return bytes(out)


def parse(message_cls, data: bytes, fmt: str):
    """Bytes → an instance of ``message_cls`` (an Export*ServiceRequest)."""
    if fmt == PROTOBUF:
        try:
            return message_cls.FromString(data)
        except DecodeError as e:
            raise BadRequest(f"cannot decode protobuf: {e}") from None
    return parse_json(message_cls, data)


def parse_json(message_cls, data: bytes):
    try:
        obj = json.loads(data)
    except UnicodeDecodeError as e:
        raise BadRequest(f"invalid JSON: body is not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BadRequest(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(obj, dict):
        raise BadRequest("invalid JSON at $: the body must be a JSON object")
    _ids_to_base64(obj, "$")
    msg = message_cls()
    try:
        json_format.ParseDict(obj, msg, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise BadRequest(f"invalid JSON: {e}") from None
    return msg


def _ids_to_base64(node, path: str) -> None:
    """Rewrite hex trace/span ids in place (walks the whole document)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _ID_FIELDS and isinstance(v, str):
                try:
                    node[k] = base64.b64encode(bytes.fromhex(v)).decode() if v else ""
                except ValueError:
                    raise BadRequest(f"invalid JSON at {path}.{k}: {v!r} is not a hex id") from None
            elif isinstance(v, (dict, list)):
                _ids_to_base64(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                _ids_to_base64(v, f"{path}[{i}]")


def encode(message, fmt: str) -> bytes:
    if fmt == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


