"""The evaluation and benchmark tools still run: `tools/eval.py --quick` and `tools/bench.py --quick`
(a few questions each) must finish and write their result files. Figures are not checked here."""

import json
import os
import subprocess
import sys

import pytest

import harness

TIMEOUT_S = 300


@pytest.mark.parametrize("tool, outputs", [("eval", ("eval.json", "eval.md")), ("bench", ("bench.json", "bench.md"))])
def test_tool_runs_and_writes_its_results(tool, outputs, eval_dir, tmp_path):
    env = {**os.environ, "SQLCHAT_EVAL_DIR": str(eval_dir), "SQLCHAT_RESULTS_DIR": str(tmp_path)}
    script = harness.REPO / "tools" / f"{tool}.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick"], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if done.returncode != 0 and "extension is not installed" in done.stderr:
        pytest.skip("the sqlchat extension is not installed in the system PostgreSQL")
    assert done.returncode == 0, f"{tool}.py --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    for name in outputs:
        path = tmp_path / name
        assert path.is_file() and path.stat().st_size > 0, f"{tool}.py --quick did not write {name}"
    report = json.loads((tmp_path / outputs[0]).read_text())
    assert report["command"].endswith("--quick")
