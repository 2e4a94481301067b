"""Request bodies in Kubernetes' protobuf encoding, for the kinds typed ``kubectl create`` sends that way
(``kubectl create namespace|secret generic|configmap|serviceaccount``). Other kinds are 415.

Wire format: the magic ``k8s\\0`` then a ``runtime.Unknown`` message (1: TypeMeta{1: apiVersion, 2: kind},
2: raw object). Field numbers below are k8s.io/api's generated.proto ones (ObjectMeta: 1 name,
2 generateName, 3 namespace, 11 labels, 12 annotations).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tests.kube_emulator.validation import ApiError

MAGIC = b"k8s\x00"


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, int or bytes) for each field of one message."""
    position, found = 0, []
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        else:
            raise ValueError(f"wire type {wire}")
        found.append((number, value))
    return found


def _map(entries: list[bytes]) -> dict[bytes, bytes]:
    pairs = {}
    for entry in entries:
        fields = dict(_fields(entry))
        pairs[fields.get(1, b"")] = fields.get(2, b"")
    return pairs


def _text(pairs: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in pairs.items()}


def _binary(pairs: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): base64.b64encode(v).decode() for k, v in pairs.items()}


def _grouped(data: bytes) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for number, value in _fields(data):
        grouped.setdefault(number, []).append(value)
    return grouped


def _metadata(data: bytes) -> dict[str, Any]:
    fields = _grouped(data)
    meta: dict[str, Any] = {}
    for number, key in ((1, "name"), (2, "generateName"), (3, "namespace")):
        if fields.get(number, [b""])[0]:
            meta[key] = fields[number][0].decode()
    for number, key in ((11, "labels"), (12, "annotations")):
        if fields.get(number):
            meta[key] = _text(_map(fields[number]))
    return meta


def _secret(fields: dict[int, list[Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if fields.get(2):
        body["data"] = _binary(_map(fields[2]))
    if fields.get(4):
        body["stringData"] = _text(_map(fields[4]))
    if fields.get(3, [b""])[0]:
        body["type"] = fields[3][0].decode()
    return body


def _configmap(fields: dict[int, list[Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if fields.get(2):
        body["data"] = _text(_map(fields[2]))
    if fields.get(3):
        body["binaryData"] = _binary(_map(fields[3]))
    return body


_KINDS: dict[str, Callable[[dict[int, list[Any]]], dict[str, Any]]] = {
    "Namespace": lambda fields: {},
    "ServiceAccount": lambda fields: {},
    "Secret": _secret,
    "ConfigMap": _configmap,
}


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of a supported kind; 400/415 otherwise."""
    if not raw.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "error decoding body: protobuf body without the k8s envelope")
    try:
        envelope = _grouped(raw[len(MAGIC) :])
        type_meta = dict(_fields(envelope[1][0]))
        api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
        if kind not in _KINDS:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the emulator decodes protobuf only for {sorted(_KINDS)}, not {kind}: use kubectl apply",
            )
        fields = _grouped(envelope[2][0])
        body = {"apiVersion": api_version, "kind": kind, **_KINDS[kind](fields)}
        body["metadata"] = _metadata(fields[1][0]) if fields.get(1) else {}
        return body
    except (IndexError, KeyError, ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "BadRequest", f"error decoding body: malformed protobuf ({err})") from err
