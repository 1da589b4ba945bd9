import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture
def run_cli(tmp_path):
    """Run the real `staircase` command in a subprocess; returns the CompletedProcess."""

    def run(*args, check=False, cwd=None):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
        return subprocess.run(
            [sys.executable, "-m", "staircase", *map(str, args)],
            capture_output=True, text=True, cwd=cwd or tmp_path, env=env, check=check, timeout=300,
        )

    return run
