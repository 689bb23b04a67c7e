"""The README and .env.example document every setting the code has."""

import importlib.util
import re
from pathlib import Path

from seoblog_runtime.settings_doc import all_settings

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("settings_doc", ROOT / "scripts/settings_doc.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_example_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^# ([A-Z0-9_]+)=", text, flags=re.M))
    missing = {d.env for d in all_settings()} - listed
    assert not missing, f"run `make settings-doc`; .env.example lacks {sorted(missing)}"
    assert load_script().render_env_example(text) == text, "run `make settings-doc`"


def test_readme_settings_tables_are_current():
    readme = (ROOT / "README.md").read_text()
    assert load_script().render_readme(readme) == readme, "run `make settings-doc`"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make up" in readme
    assert "make test" in readme
