"""graphdel's unlearning engine: MultiDelete, its loss terms, and baselines behind one registry.

>>> from graphdel.unlearning import unlearn, UnlearningContext
>>> result = unlearn(model, UnlearningContext(forget=df, retain=dr, calibration=cal), "multidelete",
...                  ["alpha=0.5", "terms.ukr=false"])

The engine only uses the modality protocol (:mod:`graphdel.models.protocol`); it imports nothing
molecule-, graph-, KG- or image-specific.
"""

from graphdel.unlearning.base import (
    FROZEN_PARAMETER_NAMES,
    GradientConfig,
    GradientMethod,
    Trainer,
    UnlearningContext,
    UnlearningDivergedError,
    UnlearningMethod,
    UnlearningResult,
    available_methods,
    config_keys,
    get_method,
    parse_overrides,
    register_method,
    unlearn,
)
from graphdel.unlearning.losses import (
    derangement,
    distance,
    modality_decoupling,
    multimodal_retention,
    negative_texts,
    unimodal_retention,
)
from graphdel.unlearning.selection import reached_reference, sampler_score, select_index

# built-in methods (importing registers them)
from graphdel.unlearning.multidelete import MultiDelete, MultiDeleteConfig  # noqa: E402
from graphdel.unlearning.retrain import Retrain  # noqa: E402
from graphdel.unlearning.finetune import Finetune  # noqa: E402
from graphdel.unlearning.neggrad import NegGrad  # noqa: E402
from graphdel.unlearning.neggrad_plus import NegGradPlus  # noqa: E402
from graphdel.unlearning.random_pair import RandomPair  # noqa: E402
from graphdel.unlearning.dtd import DtD  # noqa: E402
from graphdel.unlearning.scrub import Scrub  # noqa: E402
from graphdel.unlearning.salun import SalUn  # noqa: E402
from graphdel.unlearning.gnndelete import GNNDelete  # noqa: E402

__all__ = [
    "FROZEN_PARAMETER_NAMES", "GradientConfig", "GradientMethod", "Trainer", "UnlearningContext",
    "UnlearningDivergedError", "UnlearningMethod", "UnlearningResult", "available_methods", "config_keys",
    "get_method", "parse_overrides", "register_method", "unlearn", "derangement", "distance",
    "modality_decoupling", "multimodal_retention", "negative_texts", "unimodal_retention",
    "reached_reference", "sampler_score", "select_index", "MultiDelete", "MultiDeleteConfig",
    "Retrain", "Finetune", "NegGrad", "NegGradPlus", "RandomPair", "DtD", "Scrub", "SalUn", "GNNDelete",
]
