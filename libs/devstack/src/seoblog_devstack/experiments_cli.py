"""`seoblog experiments`: create, list and show experiments (the comparison table: per variant
the figures with their 95 % intervals), pause, resume, set shares, promote, roll back, over the
gateway's admin API (/v1/experiments; needs an admin key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml
from rich.console import Console
from rich.table import Table

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
METRIC_LABELS = {
    "failure_rate": "failure rate",
    "seo_score": "SEO score",
    "latency_e2e_p50_s": "e2e p50 s",
    "latency_e2e_p95_s": "e2e p95 s",
    "latency_crawl_p50_s": "crawl p50 s",
    "latency_translate_p50_s": "translate p50 s",
    "latency_generate_p50_s": "generate p50 s",
    "latency_crawl_p95_s": "crawl p95 s",
    "latency_translate_p95_s": "translate p95 s",
    "latency_generate_p95_s": "generate p95 s",
    "tokens_per_post": "tokens/post",
    "cost_per_post_usd": "cost/post $",
    "revision_rate": "revision rate",
}

experiments_app = typer.Typer(
    name="experiments",
    help="Experiments: try overrides (prompt, model, extraction mode) on a share of jobs.",
    no_args_is_help=True,
)
console = Console()

Gateway = Annotated[
    str,
    typer.Option(envvar="SEOBLOG_GATEWAY", help="gateway base URL (env SEOBLOG_GATEWAY)"),
]
ApiKey = Annotated[
    str | None, typer.Option(envvar="SEOBLOG_API_KEY", help="admin API key (env SEOBLOG_API_KEY)")
]
AsJson = Annotated[bool, typer.Option("--json", help="print the gateway's JSON")]


class Client:
    def __init__(self, gateway: str, api_key: str | None) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = httpx.Client(base_url=gateway.rstrip("/"), headers=headers, timeout=15)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            answer = self.http.request(method, f"/v1/experiments{path}", json=body)
        except httpx.HTTPError as exc:
            _fail(f"gateway unreachable: {exc}")
        if answer.status_code >= 400:
            try:
                error = answer.json()["error"]
                message = f"{error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {answer.status_code}: {answer.text[:300]}"
            _fail(message)
        return answer.json()


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error[/red] {message}", highlight=False)
    raise typer.Exit(2)


def _client(gateway: str, api_key: str | None) -> Client:
    return Client(gateway or DEFAULT_GATEWAY, api_key)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    found = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            _fail(f"{what} {value!r}: write it as key=value")
        found[key] = rest
    return found


def _scalar(text: str) -> str | int | float | bool:
    """An override value as typed on the command line: JSON scalars, else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def definition_from(
    file: Path | None,
    experiment_id: str | None,
    variant: str | None,
    share: float,
    overrides: list[str],
    priorities: list[str],
    ramp: str | None,
    min_jobs: int,
    min_seconds: float,
) -> dict[str, Any]:
    """The create request: a JSON or YAML file, or the flags (one variant)."""
    if file is not None:
        loaded = yaml.safe_load(file.read_text())  # YAML is a superset of JSON
        if not isinstance(loaded, dict):
            _fail(f"{file}: expected an object (the experiment definition)")
        return {str(k): v for k, v in loaded.items()}
    if not experiment_id or not variant:
        _fail("give --file, or --id and --variant (with --override key=value ...)")
    body: dict[str, Any] = {
        "id": experiment_id,
        "variants": [
            {
                "name": variant,
                "share": share,
                "overrides": {k: _scalar(v) for k, v in _pairs(overrides, "override").items()},
            }
        ],
        "targeting": {"priorities": priorities},
    }
    if ramp:
        steps = [float(s) for s in ramp.split(",")]
        body["ramp"] = {"steps": steps, "min_jobs": min_jobs, "min_seconds": min_seconds}
    return body


@experiments_app.command("create")
def create(
    gateway: Gateway = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="definition (JSON or YAML)")
    ] = None,
    experiment_id: Annotated[str | None, typer.Option("--id")] = None,
    variant: Annotated[str | None, typer.Option(help="the variant's name")] = None,
    share: Annotated[float, typer.Option(help="percent of matching jobs")] = 10.0,
    override: Annotated[
        list[str] | None, typer.Option(help="key=value, e.g. generator.prompt_version=post_v2")
    ] = None,
    priority: Annotated[
        list[str] | None, typer.Option(help="target only these priorities (repeatable)")
    ] = None,
    ramp: Annotated[str | None, typer.Option(help="ramp steps, e.g. 1,10,50,100")] = None,
    min_jobs: Annotated[int, typer.Option(help="finished jobs each ramp step holds")] = 20,
    min_seconds: Annotated[float, typer.Option(help="seconds each ramp step holds")] = 300,
    as_json: AsJson = False,
) -> None:
    """Create an experiment (it starts running)."""
    body = definition_from(
        file,
        experiment_id,
        variant,
        share,
        override or [],
        priority or [],
        ramp,
        min_jobs,
        min_seconds,
    )
    _show_state(_client(gateway, api_key).call("POST", "", body), as_json)


@experiments_app.command("list")
def list_(
    gateway: Gateway = DEFAULT_GATEWAY, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """List experiments, newest first."""
    items = _client(gateway, api_key).call("GET", "")["items"]
    if as_json:
        console.print_json(json.dumps(items))
        return
    table = Table("id", "status", "variants (share %)", "step", "targeting")
    for e in items:
        variants = ", ".join(f"{v['name']} {v['share']:g}" for v in e["variants"])
        targeting = ", ".join(e["targeting"].get("priorities") or []) or "all"
        step = "" if e.get("step") is None else str(e["step"])
        table.add_row(e["id"], e["status"], variants, step, targeting)
    console.print(table)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def comparison_table(experiment: dict[str, Any]) -> Table:
    """Per metric a row; per arm its value (n), and for variants the difference with its
    95 % interval, p-value and a star when significant."""
    report = experiment["report"]
    arms = report["variants"]
    table = Table(title=f"{experiment['id']} ({experiment['status']})", show_lines=False)
    table.add_column("metric")
    for arm in arms:
        label = arm["variant"] + (" (control)" if arm["variant"] == report["control"] else "")
        table.add_column(f"{label}\n{arm['share']:g} %", justify="right")
    table.add_row(
        "jobs", *[f"{a['jobs']} ({a['completed']} ok, {a['failed']} failed)" for a in arms]
    )
    for metric, label in METRIC_LABELS.items():
        cells = []
        for arm in arms:
            m = arm["metrics"].get(metric)
            if m is None or m["value"] is None:
                cells.append("-")
                continue
            cell = f"{_fmt(m['value'])} (n {m['n']})"
            if m.get("difference") is not None:
                star = " *" if m.get("significant") else ""
                cell += (
                    f"\nΔ {_fmt(m['difference'])} [{_fmt(m.get('ci_low'))}, "
                    f"{_fmt(m.get('ci_high'))}]"
                    + (f" p {_fmt(m['p_value'], 2)}" if m.get("p_value") is not None else "")
                    + star
                )
            cells.append(cell)
        table.add_row(label, *cells)
    return table


@experiments_app.command("show")
def show(
    experiment_id: str,
    gateway: Gateway = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """The experiment and its comparison with the control (Δ = variant - control, with the
    95 % interval; * = significant at 5 %)."""
    found = _client(gateway, api_key).call("GET", f"/{experiment_id}")
    if as_json:
        console.print_json(json.dumps(found))
        return
    _show_state(found, False)
    console.print(comparison_table(found))


def _show_state(experiment: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(experiment))
        return
    shares = ", ".join(f"{v['name']} {v['share']:g} %" for v in experiment["variants"])
    line = f"{experiment['id']}: {experiment['status']} ({shares})"
    if experiment.get("promoted_variant"):
        line += f", promoted {experiment['promoted_variant']}"
    if experiment.get("reason"):
        line += f": {experiment['reason']}"
    console.print(line, highlight=False)


@experiments_app.command("pause")
def pause(experiment_id: str, gateway: Gateway = DEFAULT_GATEWAY, api_key: ApiKey = None) -> None:
    """Stop assigning new jobs (they run as before)."""
    _show_state(_client(gateway, api_key).call("POST", f"/{experiment_id}/pause", {}), False)


@experiments_app.command("resume")
def resume(experiment_id: str, gateway: Gateway = DEFAULT_GATEWAY, api_key: ApiKey = None) -> None:
    """Resume a paused or rolled-back experiment (a ramp starts at its first step)."""
    _show_state(_client(gateway, api_key).call("POST", f"/{experiment_id}/resume"), False)


@experiments_app.command("shares")
def shares(
    experiment_id: str,
    share: Annotated[list[str], typer.Argument(help="variant=percent ...")],
    gateway: Gateway = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> None:
    """Set the variants' shares (stops the ramp)."""
    try:
        body = {"shares": {k: float(v) for k, v in _pairs(share, "share").items()}}
    except ValueError:
        _fail("a share is a number: variant=percent")
    _show_state(_client(gateway, api_key).call("PUT", f"/{experiment_id}/shares", body), False)


@experiments_app.command("promote")
def promote(
    experiment_id: str,
    variant: str,
    gateway: Gateway = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> None:
    """Promote a variant: its overrides apply to every matching job. Bake them into the
    services' settings afterwards."""
    body = {"variant": variant}
    _show_state(_client(gateway, api_key).call("POST", f"/{experiment_id}/promote", body), False)


@experiments_app.command("rollback")
def rollback(
    experiment_id: str,
    reason: Annotated[str, typer.Option(help="why, for the record")] = "",
    gateway: Gateway = DEFAULT_GATEWAY,
    api_key: ApiKey = None,
) -> None:
    """Roll back: every variant at 0 %."""
    body = {"reason": reason}
    _show_state(_client(gateway, api_key).call("POST", f"/{experiment_id}/rollback", body), False)


def main() -> None:
    """`python -m seoblog_devstack.experiments_cli ...` until the seoblog CLI mounts it."""
    experiments_app(prog_name="seoblog experiments")


if __name__ == "__main__":
    main()
