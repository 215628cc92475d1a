"""``lymphonet export --register`` puts a version in the MLflow Model Registry (SQLite store), and
``mlflow models serve --env-manager local`` answers a POST of one manifest row (127.0.0.1, a
bounded polling loop that stops by itself; the server is always killed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd

from lymphonet.bundle.export import untrained_checkpoint
from lymphonet.cli import main
from lymphonet.data.config import DataConfig
from lymphonet.models.hybrid import EncoderConfig, ModelConfig

DATA = DataConfig(spacing_mm=(16.0, 16.0, 16.0), shape=(12, 12, 12), n_quantiles=8,
                  blood_particles=300)
MODEL = ModelConfig(encoder=EncoderConfig(width=4, depth=2, embed_dim=8, convs_per_block=1),
                    mlp_hidden=8, n_days=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_register_then_serve_one_manifest_row(tmp_path, capsys):
    from lymphonet.twin.cohort import simulate_cohort

    cohort = tmp_path / "cohort"
    simulate_cohort(1, ["lung"], ["photon"], seed=3, out_dir=cohort, spacing_mm=12.0,
                    particles=200, progress=False)
    ckpt = untrained_checkpoint(tmp_path / "run" / "best.pt", data_config=DATA,
                                model_config=MODEL)
    uri = f"sqlite:///{(tmp_path / 'mlruns.db').as_posix()}"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "bundle"),
                 "--no-onnx", "--no-torchscript", "--register", "lymphonet-serve",
                 "--tracking-uri", uri, "--runs-dir", str(tmp_path)]) == 0
    assert "registered lymphonet-serve version 1" in capsys.readouterr().out

    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/lymphonet-serve/1",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # bounded: stops by itself
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "the server exited"
                time.sleep(1)
        else:
            raise AssertionError("the server did not come up within 120 s")
        row = pd.read_csv(cohort / "manifest.csv").iloc[[0]]
        row = row.astype(object).where(row.notna(), None)
        body = {"dataframe_split": row.to_dict(orient="split"), "params": {"root": str(cohort)}}
        body["dataframe_split"].pop("index", None)
        out = _post(f"http://127.0.0.1:{port}/invocations", body)["predictions"]
        assert len(out) == 1 and out[0]["status"] == "ok", out
        assert 0.0 < float(out[0]["predicted_nadir"]) and 0.0 <= float(out[0]["p_grade4"]) <= 1.0
        assert str(Path(cohort)) not in json.dumps(out)
    finally:
        server.kill()
        server.wait(timeout=30)
