"""Per-service NATS identities: one user per service, allowed to publish only its own events.

One table (IDENTITIES) says what each service publishes and which subjects its consumers
follow; everything else is derived from it and from the contract's subject names
(seoblog_contracts.Subjects, so SEOBLOG_NAMESPACE prefixes are respected):

- `server_config()`: the `authorization` block of a nats-server configuration file, used by
  the embedded server of `seoblog up` and by compose (deploy/nats/auth.conf);
- `helm_values()`: the same users as values for the official NATS Helm chart
  (k8s/nats/auth-values.yaml), passwords from the `seoblog-nats` Secret.

Passwords are never written into these files: the server reads them from its environment
(`$NATS_<SERVICE>_PASSWORD`), as nats-server resolves variables at load time.

    python -m seoblog_devstack.nats_auth --conf deploy/nats/auth.conf \
        --helm k8s/nats/auth-values.yaml          # regenerate both (a test checks them)

What a subject permission cannot say: JobFailed and JobProgress share one subject for every
stage, so a stage may publish another stage's failure; the payload's `stage` is not checked
by NATS (the HMAC signature on every event still binds it to a key holder).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seoblog_contracts import (
    AlertFired,
    AlertResolved,
    Event,
    ExperimentChanged,
    ExperimentRamped,
    ExperimentRolledBack,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSubmitted,
    PageCrawled,
    PostGenerated,
    Subjects,
    TextTranslated,
)

# The Kubernetes Secret that holds every service's NATS password (key: the service name).
SECRET_NAME = "seoblog-nats"  # noqa: S105 - a Secret's name, not a password
ADMIN = "admin"


@dataclass(frozen=True)
class Identity:
    """What one service may do on NATS.

    publishes: the events it publishes (their subjects, from the contract);
    consumes: the filter subjects of its durable consumers, as suffixes after the root
        (`>` for everything), which decide the dead-letter subjects it may publish;
    core: suffixes of core-NATS subjects (outside the stream) it publishes and subscribes;
    monitors: it lists the consumers of the stream (lag).
    """

    publishes: tuple[type[Event], ...]
    consumes: tuple[str, ...]
    core: tuple[str, ...] = ()
    monitors: bool = False


IDENTITIES: dict[str, Identity] = {
    "gateway": Identity(
        publishes=(JobSubmitted, JobCancelled, ExperimentChanged),
        consumes=("job.>", PostGenerated.subject_suffix, "experiment.>"),
        core=("live.*",),
    ),
    "crawler": Identity(
        publishes=(PageCrawled, JobProgress, JobFailed),
        consumes=("job.submitted.*", JobCancelled.subject_suffix),
    ),
    "translator": Identity(
        publishes=(TextTranslated, JobProgress, JobFailed),
        consumes=(PageCrawled.subject_suffix, JobCancelled.subject_suffix),
    ),
    "generator": Identity(
        publishes=(PostGenerated, JobProgress, JobFailed),
        consumes=(TextTranslated.subject_suffix, JobCancelled.subject_suffix),
    ),
    "monitor": Identity(
        publishes=(AlertFired, AlertResolved, ExperimentRolledBack, ExperimentRamped),
        consumes=(">",),
        monitors=True,
    ),
}


def _subject(subjects: Subjects, suffix: str) -> str:
    return subjects.all if suffix == ">" else f"{subjects.root}.{suffix}"


def event_subject(subjects: Subjects, event: type[Event]) -> str:
    """The subject (pattern) an event class is published on."""
    return subjects.submitted_any if event is JobSubmitted else subjects.of(event)


def _jetstream_api(subjects: Subjects, monitors: bool) -> list[str]:
    """The JetStream API a service's bus uses: declare and inspect the two streams, create,
    inspect and pull from consumers of the SEO stream, ack. Deleting or purging a stream,
    and reading single messages by sequence, are not allowed."""
    api = ["$JS.API.INFO"]
    for stream in (subjects.stream, subjects.dlq_stream):
        api += [f"$JS.API.STREAM.{verb}.{stream}" for verb in ("CREATE", "UPDATE", "INFO")]
    stream = subjects.stream
    api += [
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
    ]
    if monitors:
        api += [f"$JS.API.CONSUMER.LIST.{stream}", f"$JS.API.CONSUMER.NAMES.{stream}"]
    return api


def permissions(service: str, namespace: str = "") -> dict[str, dict[str, list[str]]]:
    """The publish and subscribe allow lists of one service (NATS denies everything else)."""
    identity = IDENTITIES[service]
    subjects = Subjects(namespace)
    events = [event_subject(subjects, event) for event in identity.publishes]
    dead_letters = [subjects.dlq(_subject(subjects, s)) for s in identity.consumes]
    core = [_subject(subjects, s) for s in identity.core]
    publish = events + dead_letters + core + _jetstream_api(subjects, identity.monitors)
    # Replies of the JetStream API, pulled messages and publish acks arrive on the inbox.
    subscribe = ["_INBOX.>", *core]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def password_variable(user: str) -> str:
    """The environment variable nats-server reads a user's password from."""
    return f"NATS_{user.upper()}_PASSWORD"


def users(namespace: str = "", *, admin: bool = True) -> list[dict[str, Any]]:
    """One entry per service (and an unrestricted `admin` for operators), password as a
    variable reference."""
    out: list[dict[str, Any]] = [
        {
            "user": name,
            "password": f"${password_variable(name)}",
            "permissions": permissions(name, namespace),
        }
        for name in IDENTITIES
    ]
    if admin:
        out.append({"user": ADMIN, "password": f"${password_variable(ADMIN)}"})
    return out


def _value(value: Any) -> str:
    # nats-server reads JSON-like values; a `$VAR` outside quotes is a variable reference.
    if isinstance(value, str) and value.startswith("$") and not value.startswith("$JS"):
        return value
    return json.dumps(value)


def server_config(namespace: str = "", *, admin: bool = True) -> str:
    """The `authorization` block for nats-server (include it, or append it to a config)."""
    lines = [
        "# Generated by `python -m seoblog_devstack.nats_auth` from IDENTITIES; do not edit.",
        "# Passwords come from the server's environment (NATS_<USER>_PASSWORD).",
        "authorization {",
        "  users = [",
    ]
    for user in users(namespace, admin=admin):
        fields = ", ".join(f"{key}: {_value(value)}" for key, value in user.items())
        lines.append(f"    {{{fields}}}")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def helm_values(namespace: str = "") -> str:
    """Values for the NATS Helm chart (nats-io/k8s, chart 1.x): the same users, each password
    from the `seoblog-nats` Secret through the container's environment."""
    chart_users = []
    for user in users(namespace):
        entry = dict(user)
        entry["password"] = f"<< {user['password']} >>"  # the chart's raw (unquoted) value
        chart_users.append(entry)
    env = {
        password_variable(user["user"]): {
            "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": user["user"]}}
        }
        for user in chart_users
    }
    values = {
        "config": {"merge": {"authorization": {"users": chart_users}}},
        "container": {"env": env},
    }
    header = (
        "# Generated by `python -m seoblog_devstack.nats_auth` from IDENTITIES; do not edit.\n"
        "# Per-service NATS users with subject permissions; passwords from the Secret\n"
        f"# `{SECRET_NAME}` (one key per user). Pass after values.yaml:\n"
        "#   helm upgrade --install nats nats/nats -n seoblog \\\n"
        "#     -f k8s/nats/values.yaml -f k8s/nats/auth-values.yaml\n"
    )
    return header + json.dumps(values, indent=2) + "\n"


def new_passwords(names: list[str] | None = None) -> dict[str, str]:
    """Fresh random passwords for every user (hex: safe in URLs and config files)."""
    return {name: secrets.token_hex(24) for name in names or [*IDENTITIES, ADMIN]}


def server_env(passwords: Mapping[str, str]) -> dict[str, str]:
    """The environment nats-server needs to resolve the passwords of `server_config()`."""
    return {password_variable(name): value for name, value in passwords.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--conf", type=Path, help="write the nats-server authorization block")
    parser.add_argument("--helm", type=Path, help="write the NATS Helm chart values")
    parser.add_argument("--namespace", default="", help="SEOBLOG_NAMESPACE of the deployment")
    args = parser.parse_args(argv)
    if args.conf:
        args.conf.parent.mkdir(parents=True, exist_ok=True)
        args.conf.write_text(server_config(args.namespace))
    if args.helm:
        args.helm.parent.mkdir(parents=True, exist_ok=True)
        args.helm.write_text(helm_values(args.namespace))
    if not (args.conf or args.helm):
        sys.stdout.write(server_config(args.namespace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
