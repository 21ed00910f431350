"""Data: the dataset registry and the train / aux / test split (`registry`), the loaders that fill the
registry (`sources`: digits, MNIST, Fashion-MNIST, CIFAR, image folders) and per-dataset recipes (`recipes`)."""
from . import sources  # noqa: F401  (fills the registry)
from .registry import (DATASETS, Dataset, ForgetSet, RawData, channel_stats, class_ref, load_dataset, load_raw, resolve_class,
                       resolve_forget, split_test, to_float)

__all__ = ["DATASETS", "class_ref", "Dataset", "ForgetSet", "RawData", "channel_stats", "load_dataset", "load_raw", "resolve_class",
           "resolve_forget", "split_test", "to_float"]
