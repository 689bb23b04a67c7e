"""`make k8s-check`: render the kustomizations with kustomize and check them with real tools,
then the few rules that are this project's own.

1. Render k8s/base, k8s/overlays/{dev,prod} and k8s/observability with `kubectl kustomize`
   (or `kustomize build`).
2. Validate every built-in object against the Kubernetes OpenAPI schemas (kubernetes-validate,
   strict: unknown fields are errors) and every KEDA and Prometheus-operator object against
   its CRD's schema (scripts/k8s/crd_validate.mjs; the @kubernetes-models packages pinned in
   scripts/k8s/package.json).
3. Security lints: checkov's Kubernetes checks over the rendered manifests (SKIPPED below
   lists the few that do not apply, each with its reason).
4. This project's rules (`project_rules`): every service's Deployment reads the event key and
   its own NATS user from Secrets and runs with least privilege; default-deny network
   policies, the crawler kept off cluster, private and metadata ranges; a ServiceMonitor per
   service; KEDA reads a clustered NATS through its headless Service; exact image versions;
   compose.yaml and the one Dockerfile agree with them.

    uv run --with pyyaml --with kubernetes-validate python scripts/k8s_check.py [--no-checkov]
"""

# ruff: noqa: S603, S607 - runs fixed tools (kubectl, node, npm, uv, docker) with our arguments

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.32.0"
CHECKOV = "checkov==3.3.30"
TARGETS = ["k8s/base", "k8s/overlays/dev", "k8s/overlays/prod", "k8s/observability"]
SERVICES = {
    "gateway": 8000,
    "crawler": 8001,
    "translator": 8002,
    "generator": 8003,
    "monitor": 8004,
}
# checkov checks that do not apply here, and why.
SKIPPED = {
    # Every image is an exact version; digests are added by `make pin-images` where a registry
    # answers (not on this project's machines: k8s/README.md).
    "CKV_K8S_43": "image digests: make pin-images",
    "CKV_K8S_15": "pull policy Always: exact versions make IfNotPresent safe",
    # The services read their settings (pydantic-settings) from the environment.
    "CKV_K8S_35": "secrets as environment variables: the settings are read from the environment",
    # The dev overlay's PostgreSQL, Redis and NATS run as their images' own users; the five
    # services run as 10001 (checked in project_rules).
    "CKV_K8S_40": "high UID: dev infrastructure images; services checked below",
}
# The crawler may reach the internet, never these (cluster, private, metadata, loopback).
FORBIDDEN = [
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "0.0.0.0/8", "fd00::/8", "fe80::/10", "::1/128", "64:ff9b::/96", "2002::/16",
]  # fmt: skip
HEADLESS = "nats-headless.seoblog.svc.cluster.local:8222"
Doc = dict[str, Any]


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def check(self, ok: bool, where: str, message: str) -> None:
        if not ok:
            self.error(where, message)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def render(target: str) -> list[Doc]:
    path = str(REPO / target)
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", path]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", path]
    else:
        raise SystemExit("neither kubectl nor kustomize is installed")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def name_of(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --------------------------------------------------------------------------- schemas


def is_custom(doc: Doc) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] in ("keda.sh", "monitoring.coreos.com")


def validate_schemas(rendered: dict[str, list[Doc]], report: Report) -> None:
    import kubernetes_validate  # a tool of this script only (uv run --with)

    custom: list[dict[str, Any]] = []
    checked = 0
    for target, docs in rendered.items():
        for doc in docs:
            if is_custom(doc):
                custom.append({"source": target, "object": doc})
                continue
            checked += 1
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                report.error(f"{target}: {name_of(doc)}", f"{path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                report.error(f"{target}: {name_of(doc)}", "no schema (unknown kind)")
    say(f"kubernetes-validate {KUBERNETES_VERSION} (strict): {checked} objects")
    node_dir = REPO / "scripts" / "k8s"
    if not (node_dir / "node_modules").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=node_dir, check=True
        )
    out = subprocess.run(
        ["node", str(node_dir / "crd_validate.mjs")],
        input=json.dumps(custom),
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stdout.splitlines():
        report.error("CRD schema", line)
    if out.returncode not in (0, 1):
        report.error("CRD schema", f"validator failed: {out.stderr.strip()[-500:]}")
    kinds = sorted({d["object"]["kind"] for d in custom})
    say(f"CRD schemas ({', '.join(kinds)}): {len(custom)} objects")


# --------------------------------------------------------------------------- checkov


def run_checkov(rendered: dict[str, list[Doc]], report: Report) -> None:
    uv = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    with tempfile.TemporaryDirectory(prefix="k8s-check-") as tmp:
        for target, docs in rendered.items():
            name = target.replace("/", "_") + ".yaml"
            (Path(tmp) / name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
        cmd = [uv, "tool", "run", "--from", CHECKOV, "checkov", "-d", tmp]
        cmd += ["--framework", "kubernetes", "--quiet", "--compact", "-o", "json"]
        cmd += ["--skip-check", ",".join(SKIPPED)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        results = json.loads(out.stdout)
    except json.JSONDecodeError:
        report.error("checkov", f"did not run: {out.stderr.strip()[-800:]}")
        return
    runs = results if isinstance(results, list) else [results]
    passed = 0
    for run in runs:
        passed += run.get("summary", {}).get("passed", 0)
        for failed in run.get("results", {}).get("failed_checks", []):
            where = f"{Path(failed['file_path']).stem}: {failed['resource']}"
            report.error(where, f"checkov {failed['check_id']}: {failed['check_name']}")
    say(f"checkov ({CHECKOV}): {passed} passed, skipped {', '.join(SKIPPED)}")


# --------------------------------------------------------------------------- project rules


def env_of(container: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in container.get("env") or []}


def secret_ref(item: Doc | None) -> tuple[str, str] | None:
    """(Secret, key) an env entry reads; a generated Secret's content hash suffix dropped."""
    ref = ((item or {}).get("valueFrom") or {}).get("secretKeyRef")
    if not ref:
        return None
    name = ref["name"]
    for base in ("seoblog-secrets", "seoblog-nats"):
        if name.startswith(base + "-"):
            name = base
    return name, ref["key"]


def check_deployment(target: str, doc: Doc, report: Report) -> None:
    name = doc["metadata"]["name"]
    where = f"{target}: Deployment/{name}"
    pod = doc["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == name)
    env = env_of(container)
    check = report.check
    check(env.get("OTEL_SERVICE_NAME", {}).get("value") == name, where, "OTEL_SERVICE_NAME")
    check(
        env.get(f"{name.upper()}_PORT", {}).get("value") == str(SERVICES[name]),
        where,
        f"{name.upper()}_PORT must be {SERVICES[name]}",
    )
    check(
        secret_ref(env.get("SEOBLOG_EVENT_KEY")) == ("seoblog-secrets", "SEOBLOG_EVENT_KEY"),
        where,
        "SEOBLOG_EVENT_KEY must come from the Secret seoblog-secrets",
    )
    check(env.get("NATS_USER", {}).get("value") == name, where, f"NATS_USER must be {name}")
    check(
        secret_ref(env.get("NATS_PASSWORD")) == ("seoblog-nats", name),
        where,
        f"NATS_PASSWORD must come from the Secret seoblog-nats, key {name}",
    )
    security = pod.get("securityContext") or {}
    check(security.get("runAsNonRoot") is True, where, "pod must set runAsNonRoot")
    check(int(security.get("runAsUser", 0)) >= 10000, where, "pod must run as a uid >= 10000")
    check(
        (security.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
        where,
        "pod must use the RuntimeDefault seccomp profile",
    )
    check(pod.get("automountServiceAccountToken") is False, where, "no service account token")
    own = container.get("securityContext") or {}
    check(own.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation")
    check(own.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem")
    check((own.get("capabilities") or {}).get("drop") == ["ALL"], where, "drop ALL capabilities")


def networks(block: Doc) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr) for cidr in block.get("except") or []]


def allowed(policy: Doc, cidr: str) -> bool:
    """True when some egress rule of `policy` lets traffic to `cidr` out."""
    target = ipaddress.ip_network(cidr)
    for rule in policy["spec"].get("egress") or []:
        for peer in rule.get("to") or [{}]:
            if "ipBlock" not in peer:
                continue  # pod and namespace selectors name in-cluster peers, not ranges
            block = peer["ipBlock"]
            outer = ipaddress.ip_network(block["cidr"])
            if outer.version != target.version or not target.subnet_of(outer):  # type: ignore[arg-type]
                continue
            if not any(
                target.subnet_of(net) for net in networks(block) if net.version == target.version
            ):  # type: ignore[arg-type]
                return True
    return False


def check_network(target: str, docs: list[Doc], report: Report) -> None:
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies.get("default-deny", {}).get("spec", {})
    report.check(
        deny.get("podSelector") == {}
        and set(deny.get("policyTypes", [])) == {"Ingress", "Egress"}
        and not deny.get("ingress")
        and not deny.get("egress"),
        target,
        "NetworkPolicy default-deny must select every pod and allow nothing",
    )
    for policy in policies.values():
        selector = policy["spec"].get("podSelector", {})
        values = [v for e in selector.get("matchExpressions", []) for v in e.get("values", [])]
        if selector.get("matchLabels", {}).get("app.kubernetes.io/name") == "crawler" or (
            "crawler" in values
        ):
            for cidr in FORBIDDEN:
                report.check(
                    not allowed(policy, cidr),
                    f"{target}: NetworkPolicy/{policy['metadata']['name']}",
                    f"lets the crawler reach {cidr}",
                )


def check_images(target: str, docs: list[Doc], report: Report) -> None:
    for doc in docs:
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            image = container["image"]
            tag = image.split("@")[0].rsplit(":", 1)[-1] if ":" in image else ""
            exact = tag not in ("", "latest") and (tag == "dev" or "." in tag)
            report.check(exact, f"{target}: {name_of(doc)}", f"image {image}: no exact version")


def check_keda(target: str, docs: list[Doc], report: Report) -> None:
    for doc in docs:
        if doc["kind"] != "ScaledObject":
            continue
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] != "nats-jetstream":
                continue
            endpoint = trigger["metadata"]["natsServerMonitoringEndpoint"]
            if target.endswith("prod"):
                report.check(
                    endpoint == HEADLESS,
                    f"{target}: {name_of(doc)}",
                    f"a clustered NATS must be read through {HEADLESS} (k8s/README.md)",
                )


def project_rules(rendered: dict[str, list[Doc]], report: Report) -> None:
    for target in ("k8s/overlays/dev", "k8s/overlays/prod"):
        docs = rendered[target]
        deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
        for name in SERVICES:
            if name not in deployments:
                report.error(target, f"no Deployment {name}")
                continue
            check_deployment(target, deployments[name], report)
        check_network(target, docs, report)
        check_images(target, docs, report)
        check_keda(target, docs, report)
    monitors = {
        d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name")
        for d in rendered["k8s/observability"]
        if d["kind"] == "ServiceMonitor"
    }
    report.check(set(SERVICES) <= monitors, "k8s/observability", "a ServiceMonitor per service")
    say("project rules: Deployments, network policies, images, KEDA, ServiceMonitors")


# --------------------------------------------------------------------------- compose, Dockerfile


def compose_config() -> Doc:
    """compose.yaml as Docker Compose resolves it (every profile), with placeholder secrets."""
    env = dict(os.environ, SEOBLOG_EVENT_KEY="x" * 64)
    for user in (*SERVICES, "admin"):
        env[f"NATS_{user.upper()}_PASSWORD"] = "placeholder"
    profiles = ["--profile", "observability", "--profile", "cluster", "--profile", "load"]
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(cmd[0]):
            continue
        out = subprocess.run(
            [*cmd, *profiles, "config"], cwd=REPO, env=env, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        if out.returncode == 0:
            return dict(yaml.safe_load(out.stdout))
        if "unknown" not in out.stderr and "not a docker command" not in out.stderr:
            raise SystemExit(f"{' '.join(cmd)} config failed:\n{out.stderr}")
    say("compose: no docker compose here; reading compose.yaml as YAML")
    return dict(yaml.safe_load((REPO / "compose.yaml").read_text()))


def iter_env(service: Doc) -> Iterator[tuple[str, str]]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    for key, value in env.items():
        yield key, str(value)


def check_compose(report: Report) -> None:
    raw = (REPO / "compose.yaml").read_text()
    config = compose_config()
    services: dict[str, Doc] = config.get("services") or {}
    for name, port in SERVICES.items():
        svc = services.get(name)
        if svc is None:
            report.error("compose.yaml", f"no service {name}")
            continue
        env = dict(iter_env(svc))
        report.check(env.get("NATS_USER") == name, "compose.yaml", f"{name}: NATS_USER")
        report.check(bool(env.get("NATS_PASSWORD")), "compose.yaml", f"{name}: NATS_PASSWORD")
        build = svc.get("build") or {}
        args = build.get("args") or {}
        report.check(
            Path(build.get("context", "")).resolve() == REPO
            and build.get("dockerfile", "Dockerfile") == "Dockerfile"
            and args.get("SERVICE") == name
            and str(args.get("PORT")) == str(port),
            "compose.yaml",
            f"{name}: build the root Dockerfile with SERVICE={name} PORT={port}",
        )
        report.check("healthcheck" in svc, "compose.yaml", f"{name}: healthcheck")
    for secret in ("SEOBLOG_EVENT_KEY", *(f"NATS_{u.upper()}_PASSWORD" for u in SERVICES)):
        report.check(f"${{{secret}:?" in raw, "compose.yaml", f"{secret} must be required (:?)")
    for name in ("prometheus", "grafana", "jaeger"):
        svc = services.get(name) or {}
        report.check(
            "observability" in (svc.get("profiles") or []),
            "compose.yaml",
            f"{name} must run in the observability profile",
        )
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else volume.split(":")[0]
            if source and source.startswith(("./", "/")):
                path = Path(source) if source.startswith("/") else REPO / source
                report.check(path.exists(), "compose.yaml", f"{name} mounts missing {source}")
    say(f"compose.yaml: {len(services)} services")


def check_dockerfile(report: Report) -> None:
    text = (REPO / "Dockerfile").read_text()
    for needle in ("ARG SERVICE", "uv sync --frozen", "USER 10001", "HEALTHCHECK", "/healthz"):
        report.check(needle in text, "Dockerfile", f"lacks {needle}")
    left = sorted(str(p.relative_to(REPO)) for p in (REPO / "services").glob("*/Dockerfile"))
    report.check(not left, "services", f"one Dockerfile at the root, not {left}")
    say("Dockerfile: one, with ARG SERVICE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--no-checkov", action="store_true", help="skip the checkov lints")
    args = parser.parse_args(argv)
    report = Report()
    rendered = {target: render(target) for target in TARGETS}
    say("rendered: " + ", ".join(f"{t} ({len(d)} objects)" for t, d in rendered.items()))
    validate_schemas(rendered, report)
    if not args.no_checkov:
        run_checkov(rendered, report)
    project_rules(rendered, report)
    check_compose(report)
    check_dockerfile(report)
    if report.errors:
        sys.stderr.write(f"\n{len(report.errors)} problem(s):\n")
        for line in report.errors:
            sys.stderr.write(f"  {line}\n")
        return 1
    say("all deployment checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
