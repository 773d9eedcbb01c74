"""Tests of the SAC+HER training script: artifacts, manifest, reproducibility, resumption."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lgutils.core import nn
from lgutils.core.paths import load_manifest, sha256
from lgutils.value_function_mpc import train

torch.set_num_threads(1)


def test_training_writes_registered_artifacts_and_is_reproducible(tmp_path):
    kw = dict(seed=3, steps=150, eval_every=150, checkpoint_every=1000, progress=False)
    p1 = train.train_cstr(out=tmp_path / "a" / "cstr_sac", **kw)
    p2 = train.train_cstr(out=tmp_path / "b" / "cstr_sac", save_zip=False, **kw)
    man = load_manifest(tmp_path / "a")
    assert set(man) == {
        "cstr_sac/weights.npz",
        "cstr_sac/learning_curve.csv",
        "cstr_sac/sac_model.zip",
        "cstr_sac/provenance.json",
    }
    entry = man["cstr_sac/weights.npz"]
    assert entry["seed"] == 3 and entry["steps"] == 150 and "torch" in entry["versions"]
    assert entry["sha256"] == sha256(tmp_path / "a" / "cstr_sac" / "weights.npz")
    # the same seed gives the same weights
    w1 = nn.load_weights(tmp_path / "a" / "cstr_sac" / "weights.npz")
    w2 = nn.load_weights(tmp_path / "b" / "cstr_sac" / "weights.npz")
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])
    assert p1["fig3_check"] == p2["fig3_check"]
    run = train.load_cstr_run(tmp_path / "a" / "cstr_sac")
    assert run["curve"]["step"].tolist() == [150.0]
    assert run["provenance"]["settings"]["batch_size"] == 256
    assert not (tmp_path / "a" / "cstr_sac" / ".checkpoint").exists()


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "cstr_sac"
    kw = dict(
        seed=1, steps=200, eval_every=100, checkpoint_every=100, progress=False, save_zip=False
    )

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nn, "save_weights", crash)
    with pytest.raises(KeyboardInterrupt):
        train.train_cstr(out=out, **kw)
    meta = json.loads((out / ".checkpoint" / "meta.json").read_text())
    assert meta["done"] == 100
    monkeypatch.undo()
    prov = train.train_cstr(out=out, **kw)
    assert prov["resumed_at_steps"] == [100]
    assert prov["steps"] == 200
    curve = train.load_cstr_run(out)["curve"]
    assert curve["step"].tolist() == [100.0, 200.0]
    assert not (out / ".checkpoint").exists()


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="steps must be an integer"):
        train.train_cstr(steps=0, out=tmp_path)
    with pytest.raises(ValueError, match="settings has unknown keys"):
        train.make_cstr_sac(None, 0, {"lr": 1.0})


def test_several_seeds_in_parallel_are_the_single_runs(tmp_path, monkeypatch):
    """train_seeds: each seed's run equals train_cstr alone, whatever the number of jobs."""
    monkeypatch.setenv("LGUTILS_DATA_DIR", str(tmp_path / "data"))
    kw = dict(steps=150, eval_every=150, checkpoint_every=1000, save_zip=False)
    provs = train.train_seeds([4, 5], n_jobs=2, **kw)
    assert [p["seed"] for p in provs] == [4, 5]
    man = load_manifest(tmp_path / "data")
    assert {f"cstr_sac_seeds/seed_{s}/weights.npz" for s in (4, 5)} <= set(man)
    assert man["cstr_sac_seeds/seed_5/weights.npz"]["seed"] == 5
    alone = train.train_cstr(seed=5, out=tmp_path / "alone" / "cstr_sac", progress=False, **kw)
    run = train.load_cstr_run(tmp_path / "data" / "cstr_sac_seeds" / "seed_5")
    w_alone = nn.load_weights(tmp_path / "alone" / "cstr_sac" / "weights.npz")
    for k in w_alone:
        np.testing.assert_array_equal(run["weights"][k], w_alone[k])
    assert alone["fig3_check"] == provs[1]["fig3_check"]
    with pytest.raises(ValueError, match="distinct"):
        train.train_seeds([1, 1], **kw)
