"""DistributedDataParallel with 2 CPU processes (gloo): ranks stay in sync, rank 0 writes."""

import json
import os
import socket

import torch
import torch.multiprocessing as mp

OVERRIDES = ["cohort.n=24", "train.epochs=2", "train.batch_size=4", "train.baseline_epochs=1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from lymphonet.training.config import load_training_config
    from lymphonet.training.script import load_train_script

    cfg = load_training_config("configs/smoke.yaml", OVERRIDES)
    summary = load_train_script().train(cfg, device="cpu", tracking=False, out_dir=out)
    ckpt = torch.load(os.path.join(out, "smoke", "final.pt"), weights_only=True) if rank == 0 else None
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world_size": summary["world_size"],
                   "rmse": summary["results"]["hybrid"]["log_alc_rmse_all"],
                   "n_train_seen": summary["patients_per_s"] > 0,
                   "saved_epoch": None if ckpt is None else ckpt["state"]["epoch"]}, f)


def test_two_gloo_processes_train_in_sync(tmp_path):
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    # DDP averages gradients, so both ranks end with identical weights -> identical test metrics
    assert r0["rmse"] == r1["rmse"]
    assert r0["saved_epoch"] == 2
    assert (tmp_path / "smoke" / "best.pt").exists()
