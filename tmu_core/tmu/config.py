"""TMU's settings, one frozen section per stage: the twin problem (`twin`), the features that score D_a and D_f
(`scoring`), the easy/hard classifier (`classifier`) and the final unlearning (`unlearn`). Leaf names are unique
across sections, so the CLI flags (--tmu-twin-epochs, --tmu-features, --tmu-nf-k, --tmu-clf-epochs, --tmu-epochs)
and the stored `method_params` address them flat; section names are stored nowhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..config import Config, opt
from ..errors import TMUError
from ..unlearn.loop import LoopConfig
from .classifier import ClassifierConfig
from .features import ALL_FEATURES, FEATURES, HELD_OUT_FEATURES


class TwinConfig(Config):
    """The twin problem: D_a sized by Eq. 3 from the aux pool, and M_o fine-tuned on it (with replay)."""

    aux_scale: float = opt(1.0, "multiplier on Eq. 3's |D_a|", min=0.05, max=20.0)
    aux_max_factor: float = opt(
        4.0, "cap on augmentation: |D_a| <= factor x the aux pool of the class", min=1.0, max=100.0
    )
    twin_epochs: int = opt(4, "epochs fine-tuning M_o into the twin model", min=1, max=200)
    twin_lr: float = opt(0.01, "twin fine-tuning learning rate", min=1e-6, max=1.0)
    twin_replay: float = opt(
        3.0, "replayed D_r ∪ D_f samples per D_a sample while fine-tuning the twin", min=0.0, max=100.0
    )
    twin_fit: Literal["epochs", "match"] = opt(
        "epochs",
        "twin training: epochs (exactly twin epochs, cosine) or match (constant rate until, "
        "looked at after every step, M_t's loss on D_a is no higher than M_o's on D_f, at "
        "most twin max epochs)",
    )
    twin_max_epochs: int = opt(20, "twin fit match: the most epochs it may take", min=1, max=500)
    twin_bags: int = opt(
        1,
        "twins drawn (bagging): each an Eq. 3-sized D_a (disjoint while the aux pool allows) "
        "with its own M_t; their labelled features are pooled",
        min=1,
        max=20,
    )


class FeatureConfig(Config):
    """NF (nearest distance), AF (adversarial) and CF (curriculum loss), and how they are scaled."""

    features: tuple[str, ...] = opt(
        FEATURES,
        "features the classifier uses: any of NF AF CF (the paper's), HNF HM (from the held-out network) and SI "
        "(self-influence)",
    )
    peer: bool = opt(
        False,
        "also compute self-influence (SI), the data-attribution peer, and its own forecast beside TMU's (an audit "
        "extra, left out of the cost ratio)",
    )
    nf_k: int = opt(5, "NF: number of nearest neighbours averaged", min=1, max=1000)
    nf_distance: Literal["euclidean", "cosine"] = opt("euclidean", "NF distance")
    nf_normalize: bool = opt(True, "NF: L2-normalise activations first")
    pgd_eps: float = opt(4 / 255, "AF: PGD budget in pixel units ([0,1] scale)", min=0.0, max=1.0)
    pgd_steps: int = opt(5, "AF: PGD steps", min=1, max=1000)
    pgd_step_ratio: float = opt(1 / 3, "AF: PGD step size as a share of eps", min=0.01, max=2.0)
    cf_epochs: int = opt(2, "CF: epochs of the from-scratch curriculum network", min=1, max=50)
    cf_fraction: float = opt(0.3, "CF: share of D_r it trains on (plus D_f and D_a unless held out)", min=0.01, max=1.0)
    cf_lr: float = opt(0.05, "CF: learning rate", min=1e-6, max=1.0)
    cf_held_out: bool = opt(
        True,
        "CF: train the curriculum network on D_r only, so it never sees D_f or D_a "
        "(its loss then measures how well the sample is predicted without being learned)",
    )
    scale_log: bool = opt(True, "feature scaling: log1p before standardising")
    scale_clip: float = opt(5.0, "feature scaling: clip standardised values at +-this", min=0.5, max=100.0)
    scale_per_problem: bool = opt(
        False,
        "feature scaling: standardise D_a and D_f each with its own statistics (default: D_a's statistics for both)",
    )
    ablation: bool = opt(
        True,
        "audit extra: repeat the easy/hard split with every subset of NF, AF, CF (the paper's Table 4); it costs "
        "classifier fits that unlearning does not need, and is off by default on your own model",
    )

    @field_validator("features")
    @classmethod
    def _known(cls, features: tuple[str, ...]) -> tuple[str, ...]:
        bad = [f for f in features if f not in ALL_FEATURES]
        if bad or not features:
            raise TMUError(f"unknown feature(s) {bad}; choose from {', '.join(ALL_FEATURES)}")
        if len(set(features)) != len(features):
            raise TMUError(
                f"features listed twice: {' '.join(features)}; give each of {', '.join(ALL_FEATURES)} at most once"
            )
        return features

    @model_validator(mode="after")
    def _held_out(self):
        if not self.cf_held_out and set(self.features) & set(HELD_OUT_FEATURES):
            raise TMUError(
                f"features {', '.join(HELD_OUT_FEATURES)} come from the held-out CF network: keep "
                f"--tmu-cf-held-out on, or choose from {', '.join(FEATURES)}"
            )
        return self


class UnlearnConfig(LoopConfig):
    """The final step from M_o: retain loss on replayed D_r and predicted-easy D_f, the forget mechanism on
    predicted-hard D_f only. The loop fields (epochs, lr, ...) drive it."""

    mechanism: Literal["randlabel", "neggrad", "heldout_kl", "complement"] = opt(
        "randlabel",
        "forget mechanism on predicted-hard samples: random wrong labels, bounded "
        "negative gradient, heldout_kl (KL toward the held-out CF network's softmax, "
        "a network that never saw the sample), or complement (soft target: M_o's softmax with the "
        "true class removed and renormalised, what a model that never saw the sample would guess instead)",
    )
    complement_temperature: float = opt(
        1.0, "complement mechanism: temperature on M_o's logits before the true class is removed", min=0.1, max=100.0
    )
    easy_target: Literal["label", "twin"] = opt(
        "label",
        "target of predicted-easy D_f: its label (cross-entropy, as D_r), or twin (M_o's softmax at a "
        "temperature fitted on the twin so a member gets a non-member's confidence)",
    )
    distill: bool = opt(False, "retain loss on replayed D_r toward M_o's softmax (distillation) instead of its labels")
    saliency: float = opt(
        0.0,
        "share of weights updated, chosen by |gradient of the forget loss on the predicted-hard set| "
        "(SalUn's mask); 0 updates every weight",
        min=0.0,
        max=1.0,
    )
    forget_weight: float = opt(1.0, "weight of the forget term", min=0.0, max=100.0)
    max_forget_loss: float = opt(5.0, "neggrad mechanism: per-sample loss cap", min=0.1, max=100.0)
    keep_easy: bool = opt(
        True,
        "keep predicted-easy D_f samples in the retain set (off: they are left to drift like "
        "the rest of the class, as fine-tuning leaves all of D_f)",
    )
    stop_when_forgotten: bool = opt(
        True,
        "push a hard sample only while the model still classifies it correctly "
        "(the aim is gold's accuracy, not maximal damage)",
    )
    step_choice: Literal["fixed", "twin"] = opt(
        "fixed",
        "fixed (the step as configured) or twin: run the configured step and a few variants of it (complement "
        "targets, half the learning rate, complement with distillation) on the twin problem, whose gold M_o is "
        "known, and use the one that agrees best with M_o on D_a (ties: the lower activation distance); it costs "
        "one extra step per candidate, counted in TMU's cost",
    )


class TMUConfig(Config):
    """All of TMU's settings, by stage."""

    twin: TwinConfig = Field(default_factory=TwinConfig)
    scoring: FeatureConfig = Field(default_factory=FeatureConfig)  # its `features` leaf is --tmu-features
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    unlearn: UnlearnConfig = Field(default_factory=UnlearnConfig)

    @model_validator(mode="after")
    def _consistent(self):
        if self.unlearn.easy_target == "twin" and not self.unlearn.keep_easy:
            raise TMUError("easy target twin needs --tmu-keep-easy (the easy samples are kept to be given it)")
        if self.unlearn.mechanism == "heldout_kl" and not self.scoring.cf_held_out:
            raise TMUError(
                "mechanism heldout_kl needs the held-out CF network: keep --tmu-cf-held-out on, or use "
                "mechanism randlabel or neggrad"
            )
        return self


OWN_MODEL = "own-model"  # the defaults key of a run on the user's own model (methods.run_method_config)


TWIN_CHOSEN_STEP = ("imagefolder", "cifar10", "cifar100")  # where the step chosen on the twin was measured better


def dataset_defaults(dataset: str) -> dict:
    """Per-dataset overrides (flat names). Digits: 8x8 images need a larger PGD budget; its tiny twin and
    gold retrain make shorter twin and unlearning schedules cheaper at equal |delta|. On the user's own model
    the feature ablation (an audit extra whose readout needs gold) runs only on request. On the CIFAR copy the
    twin chooses the step (benchmarks/results/NOTES.md, "The step chosen on the twin"): on its held-out classes
    it moved TMU nearer gold on agreement, activation distance, |delta| and the step check, at about 2.5 times
    TMU's cost; on digits it changed nothing and doubled the cost, elsewhere it was not measured."""
    if dataset == OWN_MODEL:
        return {"ablation": False}
    if dataset in TWIN_CHOSEN_STEP:
        return {"step_choice": "twin"}
    if dataset == "digits":
        return {"pgd_eps": 16 / 255, "twin_epochs": 3, "epochs": 3, "retain_fraction": 0.5}
    if dataset in ("mnist", "fashion-mnist"):
        return {"pgd_eps": 8 / 255}
    return {}
