"""The patch types a real API server accepts, applied to plain dicts.

- ``application/merge-patch+json``: RFC 7386 (null deletes, lists are replaced whole).
- ``application/json-patch+json``: RFC 6902 via ``jsonpatch``; a failed ``test`` op is 422.
- ``application/strategic-merge-patch+json``: approximated by RFC 7386 (no list merge keys, no
  ``$patch`` directives); documented as a limit of the emulator.
- ``application/apply-patch+yaml`` (server-side apply): approximated by RFC 7386 onto the live object
  (no field ownership or conflicts); creating a missing object is the emulator's.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from tests.kube_emulator.validation import ApiError

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(current: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """The object after ``patch``; ApiError for unsupported types or failing JSON-patch guards."""
    kind = content_type.split(";")[0].strip()
    if kind in (MERGE, STRATEGIC, APPLY):
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "error decoding patch: a merge patch must be a JSON object")
        return merge_patch(copy.deepcopy(current), patch)
    if kind == JSON_PATCH:
        if not isinstance(patch, list):
            raise ApiError(400, "BadRequest", "error decoding patch: a JSON patch must be a JSON array")
        try:
            return jsonpatch.apply_patch(copy.deepcopy(current), patch)
        except jsonpatch.JsonPatchTestFailed as err:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {err}"
            ) from err
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
            raise ApiError(422, "Invalid", f"the server rejected our request: {err}") from err
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE}, {STRATEGIC}, {APPLY} (got {kind!r})",
    )
