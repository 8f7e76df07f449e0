"""graphdel: multimodal machine unlearning on graph-text data.

The command line (``graphdel``) is a thin shell over this API::

    import graphdel as gd
    run = gd.train("drugs", gd.TrainConfig(seed=0), out="runs/original")
"""

__version__ = "0.1.0"

from graphdel.api import DataConfig, load_corpus, load_run_data, quick_configs, train  # noqa: E402
from graphdel.data.sources import load_dataset  # noqa: E402
from graphdel.models.joint import ModelConfig  # noqa: E402
from graphdel.runs import Run  # noqa: E402
from graphdel.training.loop import TrainConfig  # noqa: E402

__all__ = ["DataConfig", "ModelConfig", "Run", "TrainConfig", "load_corpus", "load_dataset", "load_run_data",
           "quick_configs", "train", "__version__"]
