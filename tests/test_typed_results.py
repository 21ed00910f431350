"""Typed results: the store hands metrics.json back as the schema's model (fields, not string keys), the CLI
summary and the per-model table read those fields, and the stored file stays the JSON it always was."""

from __future__ import annotations

import json
import math

import pytest

from tmu_core import store
from tmu_core.cli import _summary
from tmu_core.errors import TMUError
from tmu_core.store.schema import MetricsFile, ModelMetrics, TMUSummary
from ui import tables

pytestmark = pytest.mark.fast  # `make test-fast`


def model(a_f: float, delta: float, **extra) -> dict:
    return {
        "acc_test": 95.0,
        "acc_remain": 99.0,
        "acc_forget": a_f,
        "delta": delta,
        "abs_delta": abs(delta),
        "activation_distance": 0.1,
        "mia": 50.0,
        "seconds": 2.0,
        **extra,
    }


def metrics() -> dict:
    """metrics.json of a run where gold gets every D_f sample right: AUC(p_easy) is undefined (NaN)."""
    return {
        "run_id": "r1",
        "dataset": "digits",
        "model": "small_cnn",
        "forget_class": 8,
        "forget_class_name": "8",
        "forget_count": 100,
        "device": "cpu",
        "cost_ratio": 0.25,
        "models": {
            "original": model(100.0, 0.0, cached=True),
            "gold": model(100.0, 0.0, seconds=8.0),
            "tmu": model(97.0, -3.0, sample_agreement=96.0, mia_auc=51.5),
        },
        "tmu": {
            "label_accuracy": 97.0,
            "confusion": {"easy_as_easy": 97, "easy_as_hard": 3, "hard_as_easy": 0, "hard_as_hard": 0},
            "label_accuracy_by_features": {"NF": 90.0},
            "auc_p_easy": float("nan"),
            "pred_easy": 97,
            "pred_hard": 3,
            "gold_easy": 100,
            "gold_hard": 0,
            "aux_count": 56,
            "aux_easy": 50,
            "aux_hard": 6,
            "aux_sizing": {"requested": 500, "used": 56},
            "threshold": 0.5,
            "twin_fidelity": {
                "twin_acc_aux": 88.0,
                "twin_loss_aux": 0.4,
                "original_acc_forget": 100.0,
                "original_loss_forget": 0.01,
                "twin_epochs": 6,
                "bags": 3,
            },
            "warnings": ["only 20 distinct aux images"],
            "stage_seconds": {"ablation": 0.5},
        },
        "newer_readout": {"kept": True},
    }


@pytest.fixture
def stored(tmp_path) -> store.Run:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "metrics.json").write_text(json.dumps(metrics()))  # NaN as JSON writes it
    return store.open_run("r1", tmp_path)


def test_the_store_returns_the_schemas_model_and_the_dict_as_stored(stored):
    m = stored.metrics_model()
    assert isinstance(m, MetricsFile) and isinstance(m.tmu, TMUSummary)
    assert isinstance(m.models["tmu"], ModelMetrics)
    assert (m.models["tmu"].sample_agreement, m.models["gold"].sample_agreement) == (96.0, None)
    assert m.models["original"].cached is True and m.models["gold"].seconds == 8.0
    assert m.tmu.twin_fidelity.bags == 3 and m.tmu.warnings == ["only 20 distinct aux images"]
    assert math.isnan(m.tmu.auc_p_easy)  # gold got all of D_f right: no AUC, and the run is not damaged for it
    assert m.model_extra["newer_readout"] == {"kept": True}  # keys newer code adds are kept
    raw = stored.metrics()
    assert isinstance(raw, dict) and raw["tmu"]["gold_hard"] == 0 and raw["newer_readout"] == {"kept": True}


def test_damaged_metrics_are_one_error_from_the_typed_reader_too(stored):
    obj = metrics()
    del obj["models"]["gold"]
    (stored.dir / "metrics.json").write_text(json.dumps(obj))
    with pytest.raises(TMUError, match=r"metrics.json in run r1 is damaged \(models: no gold\)"):
        stored.metrics_model()
    obj = metrics()
    obj["tmu"]["warnings"] = "one string, not a list"
    (stored.dir / "metrics.json").write_text(json.dumps(obj))
    with pytest.raises(TMUError, match=r"damaged \(tmu.warnings"):
        stored.metrics_model()


def test_the_cli_summary_reads_typed_fields(stored):
    text = _summary(stored.metrics_model())
    assert text.splitlines()[0] == "run r1  (digits, small_cnn, class 8 8, |D_f| 100, device cpu)"
    gold, tmu = (next(line for line in text.splitlines() if line.startswith(n + " ")) for n in ("gold", "tmu"))
    assert gold.split()[5] == "nan" and gold.split()[8] == "nan"  # no agreement or MIA AUC stored for gold
    assert tmu.split()[4:6] == ["3.00", "96.0"] and tmu.split()[8] == "51.5"
    assert "TMU label accuracy 97.0%  predicted easy/hard 97/3  gold hard 0  |D_a| 56  cost ratio 0.250" in text
    assert "; 6 twin epochs, 3 twins pooled" in text and "warning: only 20 distinct aux images" in text


def test_the_model_table_reads_the_stores_typed_rows(stored):
    rows = tables.models_frame(stored.metrics_model()).set_index("model")
    assert list(rows.index) == ["original", "gold", "tmu"]
    assert rows.loc["tmu", "agreement"] == 96.0 and math.isnan(rows.loc["gold", "agreement"])
    assert rows.loc["tmu", "images"] == 3 and rows.loc["original", "timing"] == tables.CACHED_NOTE
    assert "0.25× = TMU's unlearning time" in tables.cost_text(stored.metrics_model())
    assert "took 2.0 s, of which 0.5 s went to the audit extras" in tables.cost_text(stored.metrics_model())
