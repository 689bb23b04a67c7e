"""Checks the deployment files without a cluster: k8s/ (base and every overlay, rendered
with kubectl/kustomize when installed, else the small renderer below), compose.yaml and
the five service Dockerfiles. Run: `uv run --with pyyaml python scripts/k8s_check.py`."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "k8s"
COMPOSE = REPO / "compose.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
NAMESPACE = "seoblog"

# One word names everything of a service (STYLE.md, principle 1); the port is its default.
SERVICES = {
    "gateway": 8000,
    "crawler": 8001,
    "translator": 8002,
    "generator": 8003,
    "monitor": 8004,
}
# The services write only under this mount; their root filesystem is read-only.
TMP_MOUNT = "/tmp"  # noqa: S108 - a mount path the check looks for, not a file it writes

Doc = dict[str, Any]


def out(line: str) -> None:
    sys.stdout.write(line + "\n")


class RenderError(Exception):
    """The manifests cannot be rendered at all."""


# --------------------------------------------------------------------------- rendering


@dataclass
class Resource:
    doc: Doc
    hashed: bool = False  # a generated ConfigMap/Secret whose name gets a content hash


KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "labels",
    "commonLabels",
    "images",
    "replicas",
    "patches",
    "patchesStrategicMerge",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ClusterScaledObject",
    "ClusterTriggerAuthentication",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
BUILTIN_GROUPS = {
    "",
    "v1",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
}
# Strategic-merge keys of the Kubernetes lists a patch may touch.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
# What kyaml falls back to for lists it has no schema for.
ASSOCIATIVE_KEYS = ("mountPath", "devicePath", "ip", "type", "topologyKey", "name", "containerPort")
# Kustomize's output order (legacy sort); unknown kinds go in between, by name.
KIND_ORDER = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
]
KIND_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


def group_of(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def load_yaml_docs(path: Path) -> list[Doc]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"{rel(path)}: not valid YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, dict):
            raise RenderError(f"{rel(path)}: a document is not a mapping")
    return docs


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def find_kustomization(directory: Path) -> Path:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise RenderError(f"{rel(directory)}: no kustomization.yaml")


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it (sorted keys, HTML-escaped), for hashes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


# Kustomize swaps these hex digits for letters so a suffix never looks like a number.
HASH_ALPHABET = str.maketrans("013ae", "ghkmt")


def name_hash(doc: Doc) -> str:
    """Kustomize's generator suffix. Its hasher looks up the name under a path it
    never finds, so the name it hashes is always empty; this mirrors that."""
    if doc["kind"] == "ConfigMap":
        encoded: Doc = {"kind": "ConfigMap", "name": "", "data": doc.get("data", "")}
        if isinstance(doc.get("binaryData"), dict):
            encoded["binaryData"] = doc["binaryData"]
    else:
        encoded = {
            "kind": "Secret",
            "type": doc.get("type", ""),
            "name": "",
            "data": doc.get("data", ""),
        }
        if isinstance(doc.get("stringData"), dict):
            encoded["stringData"] = doc["stringData"]
    digest = hashlib.sha256(go_json(encoded).encode()).hexdigest()[:10]
    return digest.translate(HASH_ALPHABET)


def strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [strip_directives(v) for v in value]
    return value


def list_merge_key(key: str, base: list[Any], patch: list[Any], builtin: bool) -> str | None:
    items = base + patch
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if key == "ports" and builtin:
        return "containerPort" if all("containerPort" in i for i in items) else "port"
    if builtin and key in MERGE_KEYS:
        return MERGE_KEYS[key]
    if builtin:
        return None
    for candidate in ASSOCIATIVE_KEYS:
        if all(candidate in i for i in items):
            return candidate
    return None


def strategic_merge(base: Any, patch: Any, builtin: bool, key: str = "") -> Any:
    """Strategic merge of `patch` into `base` (maps merge, keyed lists merge, null deletes)."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return strip_directives(patch)
        merged = dict(base) if isinstance(base, dict) else {}
        for k, v in patch.items():
            if k.startswith("$"):
                continue
            if v is None:
                merged.pop(k, None)
            elif k in merged:
                merged[k] = strategic_merge(merged[k], v, builtin, k)
            else:
                merged[k] = strip_directives(v)
        return merged
    if isinstance(patch, list) and isinstance(base, list):
        merge_key = list_merge_key(key, base, patch, builtin)
        if merge_key is None:
            return strip_directives(patch)
        # Kustomize's order: the patch's items first, in its order, then the rest of base.
        by_key = {b.get(merge_key): b for b in base}
        mentioned = {item.get(merge_key) for item in patch}
        result = []
        for item in patch:
            if item.get("$patch") == "delete":
                continue
            found = by_key.get(item.get(merge_key))
            result.append(
                strip_directives(item) if found is None else strategic_merge(found, item, builtin)
            )
        return result + [b for b in base if b.get(merge_key) not in mentioned]
    return strip_directives(patch)


def pod_specs(doc: Doc) -> Iterator[Doc]:
    """The pod specs inside a workload, wherever its kind keeps them."""
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        if template.get("spec"):
            yield template["spec"]
    elif isinstance(spec.get("template"), dict) and spec["template"].get("spec"):
        yield spec["template"]["spec"]


def containers_of(doc: Doc) -> Iterator[Doc]:
    for pod in pod_specs(doc):
        for key in ("initContainers", "containers"):
            yield from pod.get(key) or []


def add_labels(mapping: Doc, path: list[str], pairs: dict[str, str]) -> None:
    node = mapping
    for part in path:
        node = node.setdefault(part, {})
        if node is None:
            return
    node.update(pairs)


def apply_labels(doc: Doc, pairs: dict[str, str], templates: bool, selectors: bool) -> None:
    add_labels(doc, ["metadata", "labels"], pairs)
    kind = doc["kind"]
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return
    if templates or selectors:
        if kind in POD_TEMPLATE_KINDS and isinstance(spec.get("template"), dict):
            add_labels(spec, ["template", "metadata", "labels"], pairs)
        if kind == "StatefulSet":
            for claim in spec.get("volumeClaimTemplates") or []:
                add_labels(claim, ["metadata", "labels"], pairs)
        if kind == "CronJob" and isinstance(spec.get("jobTemplate"), dict):
            add_labels(spec, ["jobTemplate", "metadata", "labels"], pairs)
            job_spec = spec["jobTemplate"].get("spec") or {}
            if isinstance(job_spec.get("template"), dict):
                add_labels(job_spec, ["template", "metadata", "labels"], pairs)
    if selectors:
        if kind == "Service":
            add_labels(spec, ["selector"], pairs)
        elif kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"} or (
            kind == "PodDisruptionBudget"
        ):
            add_labels(spec, ["selector", "matchLabels"], pairs)
        elif kind == "NetworkPolicy":
            add_labels(spec, ["podSelector", "matchLabels"], pairs)


def split_image(image: str) -> tuple[str, str, str]:
    """name, tag, digest of an image reference (a registry port is not a tag)."""
    name, _, digest = image.partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


class Kustomizer:
    """Just enough of `kustomize build` for k8s/: resources, namespace, labels and
    commonLabels, images, replicas, strategic-merge patches (including `$patch:
    delete`), configMapGenerator and secretGenerator with name hashes."""

    def build(self, directory: Path) -> list[Doc]:
        resources = self._accumulate(directory.resolve(), seen=())
        renames: dict[tuple[str, str], str] = {}
        for res in resources:
            if res.hashed:
                meta = res.doc["metadata"]
                new = f"{meta['name']}-{name_hash(res.doc)}"
                renames[(res.doc["kind"], meta["name"])] = new
                meta["name"] = new
        docs = [res.doc for res in resources]
        for doc in docs:
            if doc["kind"] not in {"ConfigMap", "Secret"}:
                self._rename_references(doc, renames)
        return sorted(docs, key=sort_key)

    def _accumulate(self, directory: Path, seen: tuple[Path, ...]) -> list[Resource]:
        if directory in seen:
            raise RenderError(f"{rel(directory)}: kustomizations include each other")
        path = find_kustomization(directory)
        docs = load_yaml_docs(path)
        if len(docs) != 1:
            raise RenderError(f"{rel(path)}: expected one document")
        kust = docs[0]
        unsupported = sorted(set(kust) - SUPPORTED_FIELDS)
        if unsupported:
            raise RenderError(
                f"{rel(path)}: the builtin renderer does not support {', '.join(unsupported)}; "
                "install kubectl or kustomize, or extend scripts/k8s_check.py"
            )
        resources: list[Resource] = []
        for entry in kust.get("resources") or []:
            target = (directory / entry).resolve()
            if target.is_dir():
                resources += self._accumulate(target, (*seen, directory))
            elif target.is_file():
                resources += [Resource(doc) for doc in load_yaml_docs(target)]
            else:
                raise RenderError(f"{rel(path)}: resource {entry} does not exist")
        self._generate(kust, directory, resources)
        for patch_doc in self._patch_docs(kust, directory, path):
            self._patch(resources, patch_doc, path)
        namespace = kust.get("namespace")
        for res in resources:
            if namespace and res.doc.get("kind") not in CLUSTER_SCOPED:
                res.doc.setdefault("metadata", {})["namespace"] = namespace
        for entry in kust.get("labels") or []:
            unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
            if unknown:
                raise RenderError(f"{rel(path)}: labels: unsupported {sorted(unknown)}")
            for res in resources:
                apply_labels(
                    res.doc,
                    {k: str(v) for k, v in (entry.get("pairs") or {}).items()},
                    bool(entry.get("includeTemplates")),
                    bool(entry.get("includeSelectors")),
                )
        if kust.get("commonLabels"):
            pairs = {k: str(v) for k, v in kust["commonLabels"].items()}
            for res in resources:
                apply_labels(res.doc, pairs, templates=True, selectors=True)
        for entry in kust.get("replicas") or []:
            matched = [
                r
                for r in resources
                if r.doc.get("metadata", {}).get("name") == entry["name"]
                and r.doc.get("kind") in {"Deployment", "StatefulSet", "ReplicaSet"}
            ]
            if not matched:
                raise RenderError(f"{rel(path)}: replicas: nothing named {entry['name']}")
            for res in matched:
                res.doc.setdefault("spec", {})["replicas"] = int(entry["count"])
        for entry in kust.get("images") or []:
            for res in resources:
                for container in containers_of(res.doc):
                    container["image"] = self._retag(container.get("image", ""), entry)
        return resources

    def _generate(self, kust: Doc, directory: Path, resources: list[Resource]) -> None:
        options = kust.get("generatorOptions") or {}
        for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
            for gen in kust.get(key) or []:
                data = self._generator_data(gen, directory)
                if kind == "Secret":
                    data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
                behavior = gen.get("behavior", "create")
                hashed = not (
                    (gen.get("options") or {}).get("disableNameSuffixHash")
                    or options.get("disableNameSuffixHash")
                )
                existing = next(
                    (
                        r
                        for r in resources
                        if r.doc.get("kind") == kind and r.doc["metadata"]["name"] == gen["name"]
                    ),
                    None,
                )
                if behavior == "create":
                    if existing is not None:
                        raise RenderError(f"{kind} {gen['name']} generated twice")
                    doc: Doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
                    if kind == "Secret":
                        doc["type"] = gen.get("type", "Opaque")
                    doc["data"] = data
                    resources.append(Resource(doc, hashed))
                elif behavior in {"merge", "replace"}:
                    if existing is None:
                        raise RenderError(f"{kind} {gen['name']}: nothing to {behavior}")
                    if behavior == "merge":
                        existing.doc["data"] = {**(existing.doc.get("data") or {}), **data}
                    else:
                        existing.doc["data"] = data
                    existing.hashed = existing.hashed and hashed
                else:
                    raise RenderError(f"{kind} {gen['name']}: unknown behavior {behavior}")

    @staticmethod
    def _generator_data(gen: Doc, directory: Path) -> dict[str, str]:
        unknown = set(gen) - {"name", "behavior", "literals", "envs", "files", "options", "type"}
        if unknown:
            raise RenderError(f"generator {gen.get('name')}: unsupported {sorted(unknown)}")
        data: dict[str, str] = {}
        lines: list[str] = list(gen.get("literals") or [])
        for env_file in gen.get("envs") or []:
            lines += [
                ln
                for ln in (directory / env_file).read_text().splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")
            ]
        for line in lines:
            key, sep, value = line.partition("=")
            if not sep:
                raise RenderError(f"generator {gen['name']}: `{line}` is not KEY=value")
            data[key.strip()] = value
        for file_entry in gen.get("files") or []:
            key, sep, name = file_entry.partition("=")
            source = directory / (name if sep else key)
            data[key if sep else Path(key).name] = source.read_text()
        return data

    @staticmethod
    def _patch_docs(kust: Doc, directory: Path, path: Path) -> Iterator[Doc]:
        for entry in kust.get("patchesStrategicMerge") or []:
            yield from load_yaml_docs(directory / entry)
        for entry in kust.get("patches") or []:
            if set(entry) - {"path", "patch"}:
                raise RenderError(
                    f"{rel(path)}: patches with {sorted(set(entry) - {'path', 'patch'})} are "
                    "not supported by the builtin renderer (strategic merge by kind and name only)"
                )
            if "path" in entry:
                yield from load_yaml_docs(directory / entry["path"])
            else:
                yield from (d for d in yaml.safe_load_all(entry["patch"]) if d)

    @staticmethod
    def _patch(resources: list[Resource], patch: Doc, path: Path) -> None:
        if isinstance(patch, list) or "op" in patch:
            raise RenderError(f"{rel(path)}: JSON 6902 patches are not supported")
        kind, name = patch.get("kind"), (patch.get("metadata") or {}).get("name")
        group = group_of(patch.get("apiVersion", ""))
        matches = [
            r
            for r in resources
            if r.doc.get("kind") == kind
            and r.doc.get("metadata", {}).get("name") == name
            and group_of(r.doc.get("apiVersion", "")) == group
        ]
        if len(matches) != 1:
            raise RenderError(
                f"{rel(path)}: patch for {kind}/{name} matches {len(matches)} objects"
            )
        target = matches[0]
        if patch.get("$patch") == "delete":
            resources.remove(target)
            return
        body = {k: v for k, v in patch.items() if k not in {"apiVersion", "kind"}}
        target.doc = strategic_merge(target.doc, body, builtin=group in BUILTIN_GROUPS)

    @staticmethod
    def _retag(image: str, entry: Doc) -> str:
        name, tag, digest = split_image(image)
        if not image or name != entry["name"]:
            return image
        name = str(entry.get("newName", name))
        if "digest" in entry:
            return f"{name}@{entry['digest']}"
        if "newTag" in entry:
            return f"{name}:{entry['newTag']}"
        return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")

    @staticmethod
    def _rename_references(doc: Doc, renames: dict[tuple[str, str], str]) -> None:
        def walk(node: Any, parent_key: str = "") -> None:
            if isinstance(node, dict):
                kind = None
                if parent_key in {"configMapRef", "configMapKeyRef", "configMap"}:
                    kind, field_name = "ConfigMap", "name"
                elif parent_key in {"secretRef", "secretKeyRef"}:
                    kind, field_name = "Secret", "name"
                elif parent_key == "secret":
                    kind = "Secret"
                    field_name = "secretName" if "secretName" in node else "name"
                if kind and (kind, node.get(field_name)) in renames:
                    node[field_name] = renames[(kind, node[field_name])]
                for k, v in node.items():
                    walk(v, k)
            elif isinstance(node, list):
                if parent_key == "imagePullSecrets":
                    for item in node:
                        if isinstance(item, dict) and ("Secret", item.get("name")) in renames:
                            item["name"] = renames[("Secret", item["name"])]
                for item in node:
                    walk(item, parent_key)

        walk(doc.get("spec"))


def sort_key(doc: Doc) -> tuple[int, str, str]:
    kind = doc.get("kind", "")
    if kind in KIND_ORDER:
        rank = KIND_ORDER.index(kind)
    elif kind in KIND_LAST:
        rank = len(KIND_ORDER) + 1 + KIND_LAST.index(kind)
    else:
        rank = len(KIND_ORDER)
    return rank, kind, doc.get("metadata", {}).get("name", "")


def external_renderer() -> tuple[str, list[str]] | None:
    kubectl = shutil.which("kubectl")
    if kubectl:
        return "kubectl", [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize:
        return "kustomize", [kustomize, "build"]
    return None


def render_external(command: list[str], directory: Path) -> list[Doc]:
    # The command is a resolved binary from PATH plus our own directory; no shell.
    result = subprocess.run(  # noqa: S603
        [*command, str(directory)], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise RenderError(f"{rel(directory)}: {' '.join(command[-1:])} failed: {result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def differences(ours: list[Doc], theirs: list[Doc]) -> list[str]:
    def index(docs: list[Doc]) -> dict[str, Doc]:
        return {ident(d): d for d in docs}

    a, b = index(ours), index(theirs)
    problems = [f"only the builtin renderer emits {k}" for k in sorted(set(a) - set(b))]
    problems += [f"only the external renderer emits {k}" for k in sorted(set(b) - set(a))]
    for key in sorted(set(a) & set(b)):
        where = first_difference(a[key], b[key], "")
        if where is not None:
            problems.append(f"{key} differs at {where or '/'}")
    return problems


def first_difference(x: Any, y: Any, path: str) -> str | None:
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y:
                return f"{path}/{k}"
            found = first_difference(x[k], y[k], f"{path}/{k}")
            if found is not None:
                return found
        return None
    if isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return f"{path} (length {len(x)} vs {len(y)})"
        for i, (p, q) in enumerate(zip(x, y, strict=True)):
            found = first_difference(p, q, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if x == y else path


def ident(doc: Doc) -> str:
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{doc.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


# --------------------------------------------------------------------------- checks


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def documented_secrets() -> dict[str, set[str]]:
    """The Secrets created out of band, with their keys, as k8s/secret.example.yaml shows them."""
    secrets: dict[str, set[str]] = {}
    for doc in load_yaml_docs(SECRET_EXAMPLE):
        if doc.get("kind") == "Secret":
            keys = set(doc.get("stringData") or {}) | set(doc.get("data") or {})
            secrets[doc["metadata"]["name"]] = keys
    return secrets


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_labels(doc: Doc) -> dict[str, str]:
    return (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels"
    ) or {}


def check_render(where: str, docs: list[Doc], report: Report, overlay: str) -> None:
    by_kind: dict[str, dict[str, Doc]] = {}
    seen: Counter[str] = Counter()
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name")
        if not doc.get("apiVersion") or not doc.get("kind") or not name:
            report.error(where, f"a document lacks apiVersion, kind or metadata.name: {doc!r:.120}")
            continue
        seen[ident(doc)] += 1
        by_kind.setdefault(doc["kind"], {})[name] = doc
        ns = doc["metadata"].get("namespace")
        if doc["kind"] not in CLUSTER_SCOPED and ns != NAMESPACE:
            report.error(where, f"{ident(doc)} is not in namespace {NAMESPACE}")
    for key, count in seen.items():
        if count > 1:
            report.error(where, f"{key} appears {count} times")

    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
    deployments = by_kind.get("Deployment", {})
    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    external = documented_secrets()

    for doc in workloads.values():
        check_workload(where, doc, report)
        check_references(where, doc, config_maps, secrets, external, report)
    for name in SERVICES:
        if name not in deployments:
            report.error(where, f"no Deployment {name}")
        else:
            check_service_shape(where, deployments[name], report, overlay)

    for name, svc in by_kind.get("Service", {}).items():
        selector = (svc.get("spec") or {}).get("selector") or {}
        backing = [w for w in workloads.values() if labels_match(selector, pod_labels(w))]
        if not backing:
            report.error(where, f"Service {name} selects no Deployment/StatefulSet {selector}")
        for port in (svc.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for workload in backing:
                names = {
                    p.get("name") for c in containers_of(workload) for p in c.get("ports") or []
                }
                numbers = {
                    p.get("containerPort")
                    for c in containers_of(workload)
                    for p in c.get("ports") or []
                }
                if target not in names | numbers:
                    report.error(
                        where,
                        f"Service {name} targets port {target!r}, "
                        f"which {ident(workload)} does not declare",
                    )

    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        selector = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not any(labels_match(selector, pod_labels(w)) for w in workloads.values()):
            report.error(where, f"PodDisruptionBudget {name} selects no pods {selector}")

    scaled: Counter[str] = Counter()
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        target = None
        if ref.get("kind") in {"Deployment", "StatefulSet"}:
            target = workloads.get(ref.get("name", ""))
        if target is None:
            report.error(where, f"HorizontalPodAutoscaler {name} targets missing {ref}")
            continue
        scaled[ref["name"]] += 1
        spec = hpa["spec"]
        if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
            report.error(where, f"HorizontalPodAutoscaler {name}: minReplicas > maxReplicas")
        for metric in spec.get("metrics") or []:
            resource = (metric.get("resource") or {}).get("name")
            if resource and any(
                resource not in ((c.get("resources") or {}).get("requests") or {})
                for c in containers_of(target)
            ):
                report.error(
                    where, f"HPA {name} scales on {resource} but a container has no request"
                )
    for name, so in by_kind.get("ScaledObject", {}).items():
        spec = so.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        kind = ref.get("kind", "Deployment")
        if kind != "Deployment" or ref.get("name") not in deployments:
            report.error(where, f"ScaledObject {name} targets missing {kind} {ref.get('name')}")
            continue
        scaled[ref["name"]] += 1
        if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
            report.error(where, f"ScaledObject {name}: minReplicaCount > maxReplicaCount")
        for trigger in spec.get("triggers") or []:
            if trigger.get("type") != "nats-jetstream":
                continue
            meta = trigger.get("metadata") or {}
            required = ("natsServerMonitoringEndpoint", "account", "stream", "consumer")
            missing = [k for k in (*required, "lagThreshold") if not meta.get(k)]
            if missing:
                report.error(where, f"ScaledObject {name}: nats-jetstream trigger lacks {missing}")
            elif not str(meta["consumer"]).startswith(f"{ref['name']}-"):
                report.error(
                    where,
                    f"ScaledObject {name}: consumer {meta['consumer']} is not one of "
                    f"{ref['name']}'s durables (<service>-<handler>)",
                )
    for target, count in scaled.items():
        if count > 1:
            report.error(where, f"Deployment {target} has {count} autoscalers")
    if "monitor" in deployments:
        monitor = deployments["monitor"]
        if scaled.get("monitor") or (monitor.get("spec") or {}).get("replicas") != 1:
            report.error(where, "monitor must run exactly one replica, without an autoscaler")

    for name, secret in secrets.items():
        for key, value in ((secret.get("data") or {}) | (secret.get("stringData") or {})).items():
            text = value
            if key in (secret.get("data") or {}):
                try:
                    text = base64.b64decode(value).decode()
                except (ValueError, UnicodeDecodeError):
                    text = ""
            if looks_real(str(text)):
                report.error(where, f"Secret {name} key {key} looks like a real credential")
    if overlay == "base":
        for name in secrets:
            report.error(where, f"the base must not contain Secrets, found {name}")


SECRET_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI-style API keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access keys
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
]


def looks_real(text: str) -> bool:
    return any(p.search(text) for p in SECRET_PATTERNS)


def check_workload(where: str, doc: Doc, report: Report) -> None:
    what = ident(doc)
    spec = doc.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not labels_match(selector, pod_labels(doc)):
        report.error(where, f"{what}: selector {selector} does not match its pod labels")
    for pod in pod_specs(doc):
        pod_sc = pod.get("securityContext") or {}
        volumes = {v.get("name") for v in pod.get("volumes") or []}
        volumes |= {
            (c.get("metadata") or {}).get("name") for c in spec.get("volumeClaimTemplates") or []
        }
        for container in pod.get("containers") or []:
            cname = f"{what} container {container.get('name')}"
            for probe in ("livenessProbe", "readinessProbe"):
                if not container.get(probe):
                    report.error(where, f"{cname}: no {probe}")
            port_names = {p.get("name") for p in container.get("ports") or []}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
                if isinstance(port, str) and port not in port_names:
                    report.error(where, f"{cname}: {probe} uses undeclared port {port}")
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if not {"cpu", "memory"} <= set(requests) or "memory" not in limits:
                report.error(where, f"{cname}: needs cpu and memory requests and a memory limit")
            sc = container.get("securityContext") or {}
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if non_root is not True or uid == 0:
                report.error(where, f"{cname}: must run as non-root (runAsNonRoot: true)")
            if sc.get("allowPrivilegeEscalation") is not False:
                report.error(where, f"{cname}: allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                report.error(where, f"{cname}: readOnlyRootFilesystem must be true")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                report.error(where, f"{cname}: must drop ALL capabilities")
            for mount in container.get("volumeMounts") or []:
                if mount.get("name") not in volumes:
                    report.error(where, f"{cname}: mounts unknown volume {mount.get('name')}")
            image = container.get("image", "")
            _, tag, digest = split_image(image)
            if not digest and tag in {"", "latest"}:
                report.error(where, f"{cname}: image {image!r} is not pinned to a tag")


def check_references(
    where: str,
    doc: Doc,
    config_maps: dict[str, Doc],
    secrets: dict[str, Doc],
    external: dict[str, set[str]],
    report: Report,
) -> None:
    what = ident(doc)

    def keys_of(kind: str, name: str) -> set[str] | None:
        if kind == "ConfigMap":
            found = config_maps.get(name)
            return None if found is None else set(found.get("data") or {})
        found = secrets.get(name)
        if found is not None:
            return set(found.get("data") or {}) | set(found.get("stringData") or {})
        return external.get(name)

    for container in containers_of(doc):
        for source in container.get("envFrom") or []:
            for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = source.get(ref_key)
                if ref and not ref.get("optional") and keys_of(kind, ref.get("name")) is None:
                    report.error(where, f"{what}: envFrom names missing {kind} {ref.get('name')}")
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            for ref_key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = value_from.get(ref_key)
                if not ref:
                    continue
                keys = keys_of(kind, ref.get("name"))
                if keys is None:
                    report.error(
                        where,
                        f"{what}: env {env['name']} names {kind} {ref.get('name')}, "
                        "which is neither rendered nor documented in k8s/secret.example.yaml",
                    )
                elif ref.get("key") not in keys and not ref.get("optional"):
                    report.error(
                        where,
                        f"{what}: env {env['name']} needs key {ref.get('key')} "
                        f"of {kind} {ref.get('name')}, which does not have it",
                    )


def check_service_shape(where: str, doc: Doc, report: Report, overlay: str) -> None:
    """The five services look the same: one name everywhere, their port, /tmp writable."""
    name = doc["metadata"]["name"]
    port = SERVICES[name]
    what = f"Deployment {name}"
    if (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/name") != name:
        report.error(where, f"{what}: label app.kubernetes.io/name must be {name}")
    if pod_labels(doc).get("app.kubernetes.io/name") != name:
        report.error(where, f"{what}: pod label app.kubernetes.io/name must be {name}")
    containers = list((next(pod_specs(doc), {}) or {}).get("containers") or [])
    if [c.get("name") for c in containers] != [name]:
        report.error(where, f"{what}: must have exactly one container named {name}")
        return
    container = containers[0]
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    if env.get("OTEL_SERVICE_NAME") != name:
        report.error(where, f"{what}: OTEL_SERVICE_NAME must be {name}")
    if env.get(f"{name.upper()}_PORT") != str(port):
        report.error(where, f"{what}: {name.upper()}_PORT must be {port}")
    if [p.get("containerPort") for p in container.get("ports") or []] != [port]:
        report.error(where, f"{what}: must expose containerPort {port}")
    probes = {
        probe: ((container.get(probe) or {}).get("httpGet") or {}).get("path")
        for probe in ("livenessProbe", "readinessProbe")
    }
    if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
        report.error(where, f"{what}: probes must be /healthz (liveness) and /readyz (readiness)")
    if TMP_MOUNT not in {m.get("mountPath") for m in container.get("volumeMounts") or []}:
        report.error(where, f"{what}: needs a writable /tmp (the root filesystem is read-only)")
    image_name = split_image(container.get("image", ""))[0]
    if not image_name.endswith(f"seoblog/{name}"):
        report.error(where, f"{what}: image {container.get('image')} is not seoblog/{name}")
    tag = split_image(container.get("image", ""))[1]
    if overlay == "prod" and tag in {"dev", "latest", ""}:
        report.error(where, f"{what}: prod must pin a release tag, not {tag or 'none'}")


def kustomization_files() -> Iterator[Path]:
    for name in KUSTOMIZATION_NAMES:
        yield from K8S.rglob(name)


def check_secret_example_unreferenced(report: Report) -> None:
    for path in kustomization_files():
        kust = load_yaml_docs(path)[0]
        entries = list(kust.get("resources") or []) + list(kust.get("patchesStrategicMerge") or [])
        entries += [p["path"] for p in kust.get("patches") or [] if "path" in p]
        if any((path.parent / e).resolve() == SECRET_EXAMPLE for e in entries):
            report.error(rel(path), "must not use k8s/secret.example.yaml")


def render_targets() -> list[Path]:
    overlays = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
    return [K8S / "base", *overlays]


def run_k8s(report: Report, mode: str) -> None:
    external = external_renderer() if mode in {"auto", "external", "compare"} else None
    if mode in {"external", "compare"} and external is None:
        report.error("k8s", "no kubectl or kustomize on PATH")
        return
    builtin = Kustomizer()
    for target in render_targets():
        where = rel(target)
        overlay = "base" if target.name == "base" else target.name
        try:
            ours = builtin.build(target) if mode != "external" else []
            used = "builtin renderer"
            docs = ours
            if external is not None:
                docs = render_external(external[1], target)
                used = external[0]
                if mode != "external":
                    diff = differences(ours, docs)
                    if diff and mode == "compare":
                        for line in diff:
                            report.error(where, f"builtin renderer disagrees with {used}: {line}")
                    elif diff:
                        out(f"warning: {where}: builtin renderer differs from {used}: {diff[0]}")
                        out("         (run with --compare for all differences)")
        except RenderError as exc:
            report.error(where, str(exc))
            continue
        before = len(report.errors)
        check_render(where, docs, report, overlay)
        kinds = Counter(d.get("kind") for d in docs)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        status = "ok" if len(report.errors) == before else f"{len(report.errors) - before} problems"
        out(f"{where}: {len(docs)} objects ({summary}) via {used}: {status}")
    check_secret_example_unreferenced(report)


# --------------------------------------------------------------------------- compose


def compose_env(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def check_compose(report: Report) -> None:
    where = rel(COMPOSE)
    try:
        compose = yaml.safe_load(COMPOSE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        report.error(where, f"cannot read: {exc}")
        return
    services: dict[str, Doc] = compose.get("services") or {}
    before = len(report.errors)
    if "x-common-env" not in compose:
        report.error(where, "no x-common-env anchor for the shared environment")
    for name, svc in services.items():
        health = svc.get("healthcheck") or {}
        if not health.get("test") or health.get("disable"):
            report.error(where, f"service {name} has no healthcheck")
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            report.error(where, f"service {name}: depends_on must use condition: service_healthy")
            depends = {d: {} for d in depends}
        profiles = set(svc.get("profiles") or [])
        for target, spec in depends.items():
            if target not in services:
                report.error(where, f"service {name} depends on unknown service {target}")
                continue
            if (spec or {}).get("condition") != "service_healthy":
                report.error(
                    where, f"service {name} -> {target}: condition must be service_healthy"
                )
            if not (services[target].get("healthcheck") or {}).get("test"):
                report.error(where, f"service {name} depends on {target}, which has no healthcheck")
            target_profiles = set(services[target].get("profiles") or [])
            if target_profiles and not (profiles and profiles <= target_profiles):
                report.error(
                    where, f"service {name} depends on {target}, which only runs in a profile"
                )
        build = svc.get("build")
        if build:
            context = REPO / (build.get("context", ".") if isinstance(build, dict) else build)
            dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else ""
            if context.resolve() != REPO or not (context / dockerfile).is_file():
                report.error(
                    where, f"service {name}: build must use the repo root and a Dockerfile"
                )
    for name, port in SERVICES.items():
        if name not in services:
            report.error(where, f"no service {name}")
            continue
        svc = services[name]
        env = compose_env(svc)
        if env.get("OTEL_SERVICE_NAME") != name or env.get(f"{name.upper()}_PORT") != str(port):
            report.error(where, f"service {name}: OTEL_SERVICE_NAME/{name.upper()}_PORT wrong")
        if not str(svc.get("image", "")).startswith(f"seoblog/{name}:"):
            report.error(where, f"service {name}: image must be seoblog/{name}:<tag>")
        if (svc.get("build") or {}).get("dockerfile") != f"services/{name}/Dockerfile":
            report.error(where, f"service {name}: must build services/{name}/Dockerfile")
    for optional in ("jaeger", "loadgen"):
        if optional in services and not services[optional].get("profiles"):
            report.error(where, f"service {optional} must sit behind a profile")
    status = "ok" if len(report.errors) == before else f"{len(report.errors) - before} problems"
    out(f"{where}: {len(services)} services, healthchecks and depends_on: {status}")


# --------------------------------------------------------------------------- dockerfiles


def check_dockerfiles(report: Report) -> None:
    """The five Dockerfiles are one file with the name and port swapped."""
    before = len(report.errors)
    shapes: dict[str, str] = {}
    for name, port in SERVICES.items():
        path = REPO / "services" / name / "Dockerfile"
        if not path.is_file():
            report.error(rel(path), "missing")
            continue
        text = path.read_text()
        required = {
            "FROM python:3.11-slim": "FROM python:3.11-slim" in text,
            "uv sync --frozen": "uv sync --frozen" in text,
            "PYTHONUNBUFFERED=1": "PYTHONUNBUFFERED=1" in text,
            "a non-root USER": bool(re.search(r"^USER (?!root\b|0\b)\S+", text, re.M)),
            f"EXPOSE {port}": f"EXPOSE {port}" in text,
            "HEALTHCHECK on /healthz": "HEALTHCHECK" in text and "/healthz" in text,
            f'CMD ["python", "-m", "{name}"]': f'CMD ["python", "-m", "{name}"]' in text,
        }
        for label, present in required.items():
            if not present:
                report.error(rel(path), f"lacks {label}")
        shape = text.replace(name.upper(), "@UPPER@").replace(name, "@NAME@")
        shapes[name] = shape.replace(str(port), "@PORT@")
    if len(set(shapes.values())) > 1:
        reference = shapes.get("crawler") or next(iter(shapes.values()))
        for name, shape in shapes.items():
            if shape != reference:
                report.error(
                    f"services/{name}/Dockerfile",
                    "differs from services/crawler/Dockerfile beyond the name and port",
                )
    status = "ok" if len(report.errors) == before else f"{len(report.errors) - before} problems"
    out(f"services/*/Dockerfile: {len(shapes)} Dockerfiles, one shape: {status}")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check k8s/, compose.yaml and the Dockerfiles.")
    parser.add_argument(
        "--renderer",
        choices=["auto", "builtin", "external", "compare"],
        default="auto",
        help="auto: kubectl/kustomize when installed (the builtin renderer is compared and "
        "differences warned about), else builtin; compare: differences are errors",
    )
    args = parser.parse_args(argv)
    report = Report()
    run_k8s(report, args.renderer)
    check_compose(report)
    check_dockerfiles(report)
    if report.errors:
        sys.stderr.write(f"\n{len(report.errors)} problem(s):\n")
        for line in report.errors:
            sys.stderr.write(f"  {line}\n")
        return 1
    out("all deployment checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
