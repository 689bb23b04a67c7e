"""Start-up stays import-light: numpy and scipy (about 2 s to import) load with the first
report, not with the gateway or the monitor."""

import subprocess
import sys


def test_importing_the_services_loads_no_scipy() -> None:
    code = (
        "import sys, seoblog_experiments, gateway.app, monitor.app; "
        "print(sorted(m for m in ('scipy', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
