"""The dashboard's JavaScript unit tests, run with Node's built-in test runner when Node exists."""

import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")
WEB = Path(__file__).parent.parent / "web"


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed; the dashboard's JavaScript unit tests need it")
def test_dashboard_unit_tests_pass():
    result = subprocess.run([NODE, "--test", "tests/"], cwd=WEB, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
