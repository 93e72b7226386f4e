"""The roofline: hand-computed costs, floors, ceilings and the calibration file."""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from pathlib import Path

import pytest

from bnnbench import roofline
from bnnbench.cost import (
    WorkCost,
    conv2d_cost,
    dense_cost,
    maxpool_cost,
    vi_draw_overhead,
    vi_step_overhead,
)
from bnnbench.roofline import (
    Ceilings,
    bound,
    calibration_path,
    floor_ms,
    load_or_measure,
    measure_ceilings,
    predictive_draw_cost,
    training_step_cost,
)
from bnnbench.spec import SPEC_NAMES, get_spec


def _ceilings(flops_per_s: float = 1e9, bytes_per_s: float = 1e8, **kw: object) -> Ceilings:
    fields: dict[str, object] = {
        "device": "cpu",
        "device_name": "test CPU",
        "matmul_flops_per_s": flops_per_s,
        "copy_bytes_per_s": bytes_per_s,
        "library": "torch",
        "measured_at": "2025-01-01T00:00:00+00:00",
        "host": platform.node(),
    }
    fields.update(kw)
    return Ceilings(**fields)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- WorkCost
def test_workcost_adds_and_scales():
    a, b = WorkCost(1.0, 2.0), WorkCost(10.0, 20.0)
    assert a + b == WorkCost(11.0, 22.0)
    assert 3 * a == a * 3 == a.scaled(3) == WorkCost(3.0, 6.0)
    assert sum([a, b]) == WorkCost.total([a, b]) == WorkCost(11.0, 22.0)
    assert WorkCost(4.0, 2.0).intensity == 2.0
    with pytest.raises(ValueError):
        WorkCost(-1.0, 0.0)


def test_layer_helpers_by_hand():
    # 3 points, 4 -> 5: product 2*3*4*5 = 120, bias 15, tanh 15.
    assert dense_cost(3, 4, 5) == WorkCost(150.0, 0.0)
    assert dense_cost(3, 4, 5, bias=False, activation=False) == WorkCost(120.0, 0.0)
    # 2 images 3x6x6 -> 4 channels, 3x3 kernel: 4x4 outputs; 2*2*4*16*3*9 = 6912, + 2*2*4*16.
    assert conv2d_cost(2, 3, 4, 6, 6, 3, 3) == WorkCost(6912.0 + 256.0, 0.0)
    # 2x2 max pool of 2 x 4 x 4 x 4: 2*4*2*2 outputs, 3 comparisons each.
    assert maxpool_cost(2, 4, 4, 4) == WorkCost(96.0, 0.0)


def test_vi_overhead_per_latent():
    # 3 * (6 sample + 4 prior + 7 log q) + 2 * 12 Adam = 75 flops; 6 float32 arrays r+w = 48 bytes.
    assert vi_step_overhead(10) == WorkCost(750.0, 480.0)
    assert vi_step_overhead(10, n_positive=2) == WorkCost(750.0 + 12.0, 480.0)
    assert vi_draw_overhead(10, n_positive=2) == WorkCost(64.0, 80.0)


# ------------------------------------------------------------------------------- spec costs
def test_every_spec_states_its_costs():
    for name in SPEC_NAMES:
        spec = get_spec(name)
        assert spec.step_cost is not None and spec.draw_cost is not None
        step = training_step_cost(name, spec.defaults.batch_size)
        draw = predictive_draw_cost(spec, 10_000)
        assert step.flops > 0 and step.bytes > 0 and draw.flops > 0 and draw.bytes > 0


def test_moons_costs_by_hand():
    # B = 50, d = 2, P = 40 latents, no biases, tanh after the first two products.
    # forward: 2*50*2*5 + 250 (tanh) + 2*50*5*5 + 250 (tanh) + 2*50*5*1 = 4500
    # Bernoulli-logit log-likelihood: 6 per point = 300
    # network: 3 * (4500 + 300) - 2*50*2*5 (no gradient w.r.t. the data) = 13400
    # VI: 75 * 40 = 3000  ->  16400 flops
    # bytes: 48 * 40 (mu, rho, Adam moments r+w) + 50 * (2*4 + 4) (minibatch) = 1920 + 600
    assert training_step_cost("moons_2x5", 50) == WorkCost(16_400.0, 2_520.0)
    # draw over 500 points: forward 90*500 + sigmoid 3*500 + sample 6*40 = 46740 flops;
    # bytes 8*40 (mu, rho) + 500*2*4 (inputs) + 500*4 (probabilities) = 6320.
    assert predictive_draw_cost("moons_2x5", 500) == WorkCost(46_740.0, 6_320.0)


def test_mnist_2x800_costs_by_hand():
    batch = 500
    layers = [(784, 800), (800, 800), (800, 10)]
    n_latent = sum((m + 1) * k for m, k in layers)
    assert n_latent == get_spec("mnist_2x800").n_params == 1_276_810
    # The dominant term: the three products, forward + backward (x3), less the first layer's
    # input gradient, which is never formed.
    products = 2 * batch * (784 * 800 + 800 * 800 + 800 * 10)
    assert products == 1_275_200_000
    matmul = 3 * products - 2 * batch * 784 * 800
    elementwise = 3 * batch * (800 + 800 + 10 + 800 + 800)  # biases, two tanh layers
    loglik = 3 * batch * (4 * 10 + 2)
    vi = 75 * n_latent
    step = training_step_cost("mnist_2x800", batch)
    assert step.flops == matmul + elementwise + loglik + vi == 3_299_038_750
    assert matmul / step.flops > 0.96  # the VI overhead (75 flops per latent) is ~3%
    assert step.bytes == 48 * n_latent + batch * (784 * 4 + 4) == 62_856_880
    draw = predictive_draw_cost("mnist_2x800", 10_000)
    forward = 2 * 10_000 * (784 * 800 + 800 * 800 + 800 * 10) + 10_000 * 3210
    assert draw.flops == forward + 10_000 * 5 * 10 + 6 * n_latent
    assert draw.bytes == 8 * n_latent + 10_000 * (784 + 10) * 4


def test_hierarchical_adds_its_six_scales():
    dense = training_step_cost("mnist_2x800", 500)
    hier = training_step_cost("mnist_2x800_hier", 500)
    assert hier.flops - dense.flops == 6 * 75 + 6 * 6
    assert hier.bytes - dense.bytes == 6 * 48
    d_dense = predictive_draw_cost("mnist_2x800", 100)
    d_hier = predictive_draw_cost("mnist_2x800_hier", 100)
    assert d_hier.flops - d_dense.flops == 6 * 6 + 6 * 2
    assert d_hier.bytes - d_dense.bytes == 6 * 8


def test_conv_forward_matches_its_layers():
    from bnnbench.models.mnist_conv.spec import forward_cost

    per_point = (
        2 * 32 * 24 * 24 * 1 * 25 + 2 * 32 * 24 * 24  # conv 1, bias, tanh
        + 3 * 32 * 12 * 12  # pool 1
        + 2 * 32 * 8 * 8 * 32 * 25 + 2 * 32 * 8 * 8  # conv 2, bias, tanh
        + 3 * 32 * 4 * 4  # pool 2
        + 2 * 512 * 256 + 2 * 256  # dense
        + 2 * 256 * 10 + 10  # output
    )  # fmt: skip
    assert per_point == 4_522_506
    assert forward_cost(7) == WorkCost(7.0 * per_point, 0.0)
    n_latent = get_spec("mnist_conv").n_params
    step = training_step_cost("mnist_conv", 500)
    assert step.flops == 3 * 500 * (per_point + 42) - 500 * 2 * 32 * 24 * 24 * 25 + 75 * n_latent


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_costs_grow_linearly_in_batch(name):
    c1, c2, c4 = (training_step_cost(name, b) for b in (100, 200, 400))
    assert c4.flops - c2.flops == pytest.approx(2 * (c2.flops - c1.flops), rel=1e-12)
    assert c4.bytes - c2.bytes == pytest.approx(2 * (c2.bytes - c1.bytes), rel=1e-12)
    d1, d2, d4 = (predictive_draw_cost(name, n) for n in (100, 200, 400))
    assert d4.flops - d2.flops == pytest.approx(2 * (d2.flops - d1.flops), rel=1e-12)
    assert d4.bytes - d2.bytes == pytest.approx(2 * (d2.bytes - d1.bytes), rel=1e-12)


def test_costs_reject_bad_sizes_and_missing_statements():
    with pytest.raises(ValueError, match="batch_size"):
        training_step_cost("moons_2x5", 0)
    bare = dataclasses.replace(get_spec("moons_2x5"), step_cost=None, draw_cost=None)
    with pytest.raises(ValueError, match="states no"):
        training_step_cost(bare, 10)
    with pytest.raises(ValueError, match="states no"):
        predictive_draw_cost(bare, 10)


# ------------------------------------------------------------------------------------ floors
def test_floor_picks_the_larger_term_and_labels_the_bound():
    ceilings = _ceilings(flops_per_s=1e9, bytes_per_s=1e8)
    compute = WorkCost(flops=2e9, bytes=1e8)  # 2 s of flops, 1 s of bytes
    memory = WorkCost(flops=1e9, bytes=3e8)  # 1 s of flops, 3 s of bytes
    assert floor_ms(compute, ceilings) == pytest.approx(2000.0)
    assert bound(compute, ceilings) == "compute"
    assert floor_ms(memory, ceilings) == pytest.approx(3000.0)
    assert bound(memory, ceilings) == "memory"


def test_floor_table_covers_every_spec():
    rows = roofline.floor_table(_ceilings())
    assert [r["spec"] for r in rows] == list(SPEC_NAMES)
    assert all(r["step_floor_ms"] > 0 and r["draw_floor_ms"] > 0 for r in rows)


# ---------------------------------------------------------------------------------- ceilings
def test_measure_ceilings_on_cpu_small():
    c = measure_ceilings("cpu", size=64, copy_bytes=1 << 20, repeats=2, warmup=1)
    assert c.device == "cpu" and c.library == "torch" and c.dtype == "float32"
    assert c.host == platform.node() and c.device_name
    for value in (c.matmul_flops_per_s, c.copy_bytes_per_s):
        assert math.isfinite(value) and value > 0


def test_gpu_without_cuda_raises():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match=r"gpu.*torch\.cuda\.is_available\(\) is False"):
        measure_ceilings("gpu", size=64, copy_bytes=1 << 20)


def test_bad_device_or_library():
    with pytest.raises(ValueError):
        measure_ceilings("tpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        measure_ceilings("cpu", "tensorflow")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- calibration
def test_calibration_json_round_trip(tmp_path: Path):
    c = _ceilings(matmul_size=2048, copy_bytes=1 << 28, threads=2, matmul_precision="highest")
    path = c.to_json(calibration_path(tmp_path, "cpu"))
    assert path == tmp_path / "calibration-cpu.json"
    assert json.loads(path.read_text())["host"] == platform.node()
    assert Ceilings.from_json(path) == c
    assert Ceilings.from_dict({**c.to_dict(), "unknown_key": 1}) == c


def test_load_or_measure_reuses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list[str] = []

    def fake_measure(device: str, library: str = "torch", *args: object, **kw: object):
        calls.append(device)
        return _ceilings(device=device, library=library)

    monkeypatch.setattr(roofline, "measure_ceilings", fake_measure)
    first = load_or_measure(tmp_path, "cpu")
    second = load_or_measure(tmp_path, "cpu")
    assert calls == ["cpu"] and first == second
    assert calibration_path(tmp_path, "cpu").is_file()
    load_or_measure(tmp_path, "cpu", force=True)
    assert calls == ["cpu", "cpu"]
    # A calibration from another host is measured again.
    stale = _ceilings(host="another-host")
    stale.to_json(calibration_path(tmp_path, "cpu"))
    assert load_or_measure(tmp_path, "cpu").host == platform.node()
    assert len(calls) == 3


def test_main_calibrate_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    argv = ["calibrate", "--device", "cpu", "--out", str(tmp_path), "--size", "64"]
    assert roofline.main([*argv, "--copy-mib", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "GB/s" in out
    assert Ceilings.from_json(calibration_path(tmp_path, "cpu")).matmul_size == 64
