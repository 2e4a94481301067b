"""The emulated API server: objects, writes with real-server semantics, and the request log.

Routing (in :mod:`tests.kube_emulator.server`) parses each URL once and dispatches by dict lookup, so
the cost of a request does not grow with the number of requests served before it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.kube_emulator.defaults import apply_defaults
from tests.kube_emulator.patches import apply_patch
from tests.kube_emulator.rbac import Authorizer
from tests.kube_emulator.resources import BUILTINS, ResourceType, types_from_crd
from tests.kube_emulator.store import Key, Store
from tests.kube_emulator.validation import ApiError, admit_custom_object, check_name

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet


@dataclass(frozen=True)
class Recorded:
    """One resource request the emulator served (for the RBAC test)."""

    user_agent: str
    verb: str
    api_group: str
    resource: str
    namespace: str | None
    name: str | None


def now() -> str:
    """An RFC 3339 timestamp with second precision, as the API server writes them."""
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{rtype.qualified} "{name}" not found',
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def _conflict(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


class KubeEmulator:
    """An in-memory Kubernetes API: built-in kinds plus the kinds CRDs define."""

    def __init__(self, crds: Path | None = None, namespaces: tuple[str, ...] = ("default", "kube-system")):
        self.store = Store()
        self.types: dict[Key, ResourceType] = {}
        self.versions: dict[tuple[str, str, str], ResourceType] = {}
        self.recorded: list[Recorded] = []
        self.authorizer = Authorizer(self.store)
        for rtype in BUILTINS:
            self._register(rtype)
        for namespace in namespaces:
            self.create(self.types[("", "namespaces")], None, {"metadata": {"name": namespace}})
        if crds is not None:
            for path in sorted(crds.glob("*.yaml")):
                for doc in yaml.safe_load_all(path.read_text()):
                    if doc and doc.get("kind") == "CustomResourceDefinition":
                        self.create(self.types[CRD_KEY], None, doc)

    # --- types ---------------------------------------------------------------------------------------

    def _register(self, rtype: ResourceType) -> None:
        self.types[rtype.key] = rtype
        self.versions[(rtype.group, rtype.version, rtype.plural)] = rtype

    def _crd_changed(self, crd: dict[str, Any], deleted: bool = False) -> None:
        for rtype in types_from_crd(crd):
            self.versions.pop((rtype.group, rtype.version, rtype.plural), None)
            self.types.pop(rtype.key, None)
            if not deleted:
                self._register(rtype)
            else:
                self.store.objects.pop(rtype.key, None)

    def served(self) -> list[ResourceType]:
        """Every served resource type (one entry per group-version)."""
        return list(self.versions.values())

    # --- reads ---------------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """The object, or 404."""
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else None, name)
        if obj is None:
            raise _not_found(rtype, name)
        return obj

    # --- writes --------------------------------------------------------------------------------------

    def _check_namespace(self, rtype: ResourceType, namespace: str | None) -> None:
        if rtype.namespaced and self.store.get(("", "namespaces"), None, namespace or "") is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _admit(
        self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, field_validation: str
    ) -> list[str]:
        if rtype.schema is not None:
            return admit_custom_object(rtype, obj, old, field_validation)
        return []

    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        field_validation: str = "Warn",
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], list[str]]:
        """POST: stamp the server-owned metadata, validate, store; (object, warnings)."""
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        if obj["kind"] != rtype.kind:
            raise ApiError(
                400, "BadRequest", f"the kind {obj['kind']!r} does not match the resource {rtype.kind!r}"
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace or meta.get("namespace")
            self._check_namespace(rtype, meta["namespace"])
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(_SUFFIX_ALPHABET, k=5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        if not meta.get("name"):
            raise ApiError(
                422,
                "Invalid",
                f'{rtype.kind} "" is invalid: metadata.name: Required value: '
                "name or generateName is required",
            )
        check_name(rtype, meta["name"])
        if self.store.get(rtype.key, meta.get("namespace"), meta["name"]) is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{rtype.qualified} "{meta["name"]}" already exists',
                {"name": meta["name"], "group": rtype.group, "kind": rtype.plural},
            )
        if "status" in rtype.subresources:
            obj.pop("status", None)  # a create never sets status where status is a subresource
        for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(server_owned, None)
        warnings = self._admit(rtype, obj, None, field_validation)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        apply_defaults(rtype.key, obj)
        if rtype.key == CRD_KEY:
            obj["status"] = _established(obj)
        if dry_run:
            meta["resourceVersion"] = str(self.store.revision)
            return obj, warnings
        meta["resourceVersion"] = self.store.next_revision()
        self.store.put(rtype.key, obj, "ADDED")
        if rtype.key == CRD_KEY:
            self._crd_changed(obj)
        return obj, warnings

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        new: Any,
        subresource: str | None = None,
        field_validation: str = "Warn",
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], list[str]]:
        """PUT (and the second half of PATCH): preconditions, subresource split, generation, validation."""
        old = self.get(rtype, namespace, name)
        if not isinstance(new, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        wanted_version = meta.get("resourceVersion")
        if wanted_version and wanted_version != old["metadata"]["resourceVersion"]:
            raise _conflict(rtype, name)
        if meta.get("name", name) != name:
            raise ApiError(
                400, "BadRequest", f"the name of the object ({meta['name']}) does not match the URL ({name})"
            )
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            meta = new["metadata"]
        elif subresource:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({subresource})"
            )
        elif "status" in rtype.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        for immutable in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if immutable in old["metadata"]:
                meta[immutable] = old["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        if rtype.key == ("", "services") and isinstance(new.get("spec"), dict):
            for allocated in ("clusterIP", "clusterIPs"):  # allocated once; an update without it keeps it
                if allocated in (old.get("spec") or {}) and not new["spec"].get(allocated):
                    new["spec"][allocated] = old["spec"][allocated]
        apply_defaults(rtype.key, new)
        warnings = self._admit(rtype, new, old, field_validation)
        ignored = {"metadata", "status"} if "status" in rtype.subresources else {"metadata"}
        changed = any(
            new.get(k) != old.get(k) for k in (set(new) | set(old)) - ignored - {"apiVersion", "kind"}
        )
        meta["generation"] = old["metadata"].get("generation", 1) + (1 if changed else 0)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old or dry_run:
            return (old if new == old else new), warnings
        meta["resourceVersion"] = self.store.next_revision()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.remove(rtype.key, new)
            self._collect_garbage(new)
        else:
            self.store.put(rtype.key, new, "MODIFIED")
        if rtype.key == CRD_KEY:
            self._crd_changed(new)
        return new, warnings

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        subresource: str | None = None,
        field_validation: str = "Warn",
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], list[str]]:
        """PATCH: apply the patch to the current object, then update with its rules."""
        current = self.get(rtype, namespace, name)
        patched = apply_patch(current, patch, content_type)
        patched_version = (patched.get("metadata") or {}).get("resourceVersion")
        if patched_version != current["metadata"]["resourceVersion"]:
            raise _conflict(rtype, name)
        return self.update(rtype, namespace, name, patched, subresource, field_validation, dry_run)

    def delete(
        self, rtype: ResourceType, namespace: str | None, name: str, options: Any = None
    ) -> dict[str, Any]:
        """DELETE: mark for deletion while finalizers remain, else remove and collect dependents."""
        obj = self.get(rtype, namespace, name)
        options = options if isinstance(options, dict) else {}
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") not in (None, obj["metadata"]["uid"]) or preconditions.get(
            "resourceVersion"
        ) not in (None, obj["metadata"]["resourceVersion"]):
            raise _conflict(rtype, name)
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            marked = copy.deepcopy(obj)
            marked["metadata"].update(
                deletionTimestamp=now(),
                deletionGracePeriodSeconds=0,
                resourceVersion=self.store.next_revision(),
            )
            self.store.put(rtype.key, marked, "MODIFIED")
            return marked
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self.store.next_revision()
        self.store.remove(rtype.key, gone)
        if rtype.key == CRD_KEY:
            self._crd_changed(gone, deleted=True)
        if options.get("propagationPolicy") != "Orphan":
            self._collect_garbage(gone)
        return gone

    def _collect_garbage(self, owner: dict[str, Any]) -> None:
        """The garbage collector: delete objects whose ownerReferences point at ``owner``'s uid."""
        uid = owner["metadata"]["uid"]
        for rtype in list(self.types.values()):
            for obj in list(
                self.store.list(rtype.key, owner["metadata"].get("namespace") if rtype.namespaced else None)
            ):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in refs):
                    with contextlib.suppress(ApiError):  # already collected through another owner
                        self.delete(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"])


def _established(crd: dict[str, Any]) -> dict[str, Any]:
    names = (crd.get("spec") or {}).get("names") or {}
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now()}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    versions = [v["name"] for v in (crd.get("spec") or {}).get("versions") or [] if v.get("storage")]
    return {"acceptedNames": names, "conditions": conditions, "storedVersions": versions}
