"""Registries: every dataset, model and method is listed, described, and reachable by name; a miss names
the valid entries; a duplicate is refused. Parametrised over every entry, so a new one is tested at once."""

from __future__ import annotations

import pytest

from tmu_core.config import DataConfig, flatten
from tmu_core.data import DATASETS, load_raw
from tmu_core.errors import DataUnavailable, TMUError
from tmu_core.methods import METHODS, method_config
from tmu_core.models import MODELS
from tmu_core.registry import Registry

pytestmark = pytest.mark.fast  # `make test-fast`

REGISTRIES = {"dataset": DATASETS, "model": MODELS, "method": METHODS}
EXPECTED = {
    "dataset": {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"},
    "model": {"small_cnn", "resnet18", "allcnn", "vit_tiny"},
    "method": {"tmu", "finetune", "neggrad", "randlabel", "badteacher", "scrub", "salun", "random_k", "oracle_labels"},
}
ENTRIES = [(kind, name) for kind, reg in REGISTRIES.items() for name in reg.names()]


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_registry_holds_the_required_entries(kind):
    assert set(REGISTRIES[kind].names()) == EXPECTED[kind]


@pytest.mark.parametrize("kind,name", ENTRIES)
def test_every_entry_has_a_one_line_summary_and_resolves(kind, name):
    reg = REGISTRIES[kind]
    summary = dict(reg.describe())[name]
    assert summary.strip() and "\n" not in summary and len(summary) < 200
    assert reg.get(name) is reg.entry(name).factory
    assert name in reg


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_a_miss_lists_every_valid_name(kind):
    reg = REGISTRIES[kind]
    with pytest.raises(TMUError) as exc:
        reg.get("no-such-thing")
    message = str(exc.value)
    assert "no-such-thing" in message and "\n" not in message
    for name in reg.names():
        assert name in message


def test_duplicate_registration_is_refused_and_keeps_the_first():
    reg: Registry = Registry("widget")
    reg.register("a", "first")(lambda: 1)
    with pytest.raises(RuntimeError, match="registered twice"):
        reg.register("a", "second")(lambda: 2)
    assert reg.get("a")() == 1 and reg.describe() == [("a", "first")]


@pytest.mark.parametrize("dataset", sorted(EXPECTED["dataset"]))
def test_every_method_has_a_valid_config_for_every_dataset(dataset):
    for name in METHODS.names():
        cfg = method_config(name, dataset)
        assert isinstance(cfg, METHODS.get(name).config_cls)
        assert flatten(cfg)["epochs"] >= 1


@pytest.mark.parametrize("dataset", sorted(EXPECTED["dataset"]))
def test_every_dataset_loads_or_explains_where_its_files_go(dataset, tmp_path, runs_dir, block_network):
    """Offline with an empty data root: digits loads (bundled); the others raise one line naming the folder."""
    root = tmp_path / "empty"
    root.mkdir()
    cfg = DataConfig(dataset=dataset, data_root=str(root))
    if dataset == "digits":
        raw = load_raw(cfg)
        assert raw.x_train.dtype.is_floating_point is False and raw.x_train.shape[1:] == (1, 8, 8)
        assert len(raw.x_train) + len(raw.x_test) == 1797 and raw.classes == [str(i) for i in range(10)]
        return
    expected = TMUError if dataset == "imagefolder" else DataUnavailable
    with pytest.raises(expected) as exc:
        load_raw(cfg)
    message = str(exc.value)
    assert "\n" not in message and str(root) in message
    if dataset != "imagefolder":
        assert "--data-root" in message and "could not be downloaded" in message
        assert not any(root.iterdir()), "a failed download must leave the data root as it was"


def test_the_primary_method_is_the_one_registered_primary_and_a_second_is_refused(monkeypatch):
    from dataclasses import replace

    from tmu_core.methods import primary_method

    assert primary_method() == "tmu"
    assert [n for n in METHODS.names() if METHODS.get(n).primary] == ["tmu"]
    entries = dict(METHODS._entries)
    entries["finetune"] = replace(entries["finetune"], factory=replace(METHODS.get("finetune"), primary=True))
    monkeypatch.setattr(METHODS, "_entries", entries)
    with pytest.raises(
        TMUError, match=r"exactly one method must be registered as primary; found \['finetune', 'tmu'\]"
    ):
        primary_method()


def test_methods_and_tmu_reports_are_built_by_keyword_only():
    """17 report fields and a method's six traits read by name; a positional call is refused, not misread."""
    from dataclasses import fields

    from tmu_core.methods import Method
    from tmu_core.tmu.report import TMUReport

    for cls in (Method, TMUReport):
        assert all(f.kw_only for f in fields(cls)), cls
    tmu = METHODS.get("tmu")
    with pytest.raises(TypeError):
        Method(tmu.config_cls, tmu.run, tmu.defaults, tmu.display)
    with pytest.raises(TypeError):
        TMUReport(*range(len(fields(TMUReport))))
    assert Method(config_cls=tmu.config_cls, run=tmu.run, defaults=tmu.defaults, display=tmu.display).primary is False
