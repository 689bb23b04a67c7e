"""Regenerate the README's settings tables and .env.example from the Settings classes.

python scripts/settings_doc.py            print the Markdown tables
python scripts/settings_doc.py --readme   rewrite the block in README.md
python scripts/settings_doc.py --env-file rewrite the settings lines of .env.example
"""

import sys
from pathlib import Path

from seoblog_runtime.settings_doc import SettingDoc, all_settings, readme_sections

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
FIRST_SETTING = "# NATS_URL="


def table(docs: list[SettingDoc]) -> str:
    rows = [
        f"| `{d.env}` | {f'`{d.default}`' if d.default else '—'} | {d.description} |" for d in docs
    ]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows]) + "\n"


def markdown() -> str:
    shared, common, own = readme_sections()
    out = ["Shared by every service:\n", table(shared)]
    out += [
        "\nEvery service has these under its own prefix "
        "(`GATEWAY_`, `CRAWLER_`, `TRANSLATOR_`, `GENERATOR_`, `MONITOR_`):\n",
        table(common),
    ]
    for service, docs in own.items():
        out += [f"\n{service}:\n", table(docs)]
    return "\n".join(out)


def env_lines() -> str:
    lines = []
    for doc in all_settings():
        note = f"  # {doc.description}" if doc.description else ""
        lines.append(f"# {doc.env}={doc.default}{note}\n")
    return "".join(lines)


def render_readme(readme: str) -> str:
    """The README with its settings block regenerated."""
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{markdown()}{END}{tail}"


def render_env_example(text: str) -> str:
    """.env.example with its settings lines regenerated (the header is kept)."""
    return text.split(FIRST_SETTING, 1)[0] + env_lines()


def main(argv: list[str]) -> None:
    if argv == ["--readme"]:
        path = Path("README.md")
        path.write_text(render_readme(path.read_text()))
    elif argv == ["--env-file"]:
        path = Path(".env.example")
        path.write_text(render_env_example(path.read_text()))
    else:
        sys.stdout.write(markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
