r"""DtD: Descent-to-Delete (Neel, Roth & Sharifi-Malvajerdi, "Descent-to-Delete: Gradient-Based Methods
for Machine Unlearning", ALT 2021, arXiv:2007.02923).

Update: starting from the current (original) weights, ``T = steps`` steps of (projected) gradient descent
on Dr with the model's ``training_loss`` (plain SGD, no momentum), then the published model is the
iterate plus Gaussian noise ``theta + N(0, sigma^2 I)`` on every trainable parameter (the frozen
temperature and BatchNorm buffers get none).

Noise scale. Their perturbed-gradient-descent theorem (strongly convex case) assumes a loss that is
``m``-strongly convex, ``beta``-smooth and ``L``-Lipschitz on a convex set, step size ``2/(beta+m)``,
and gives (epsilon, delta)-unlearning with

    gamma = (beta - m) / (beta + m)
    sigma = 4 * sqrt(2) * L * gamma^T / ( m * n * (1 - gamma^T) * (sqrt(log(1/delta) + epsilon) - sqrt(log(1/delta))) )

with ``n = |Dr|``. A deep contrastive model satisfies none of these assumptions, so this is the usual
heuristic deep-net variant: the formula is evaluated with stated constants ``L = 1``, ``beta = 1``,
``m = 0.1`` (so gamma = 0.818), ``T = steps = 10``, ``n = |Dr|``, epsilon = 1, delta = 1e-5; e.g.
n = 5,000 gives sigma ~= 0.012 and n = 50 gives sigma ~= 1.2. The step size is *not* 2/(beta+m) (1.8
would diverge) but ``lr`` (default 1e-3). ``sigma`` can be set directly. Projection: the deep-net
variant has no natural parameter set Theta; with ``radius`` set, each iterate is projected onto the L2
ball of that radius around the original weights (default: no projection).

No calibrated selection: the run has a single update (``epochs=1``: T steps, then noise); scores before
and after the noise are logged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from graphdel.unlearning.base import GradientConfig, GradientMethod, Trainer, check, register_method


@dataclass
class DtDConfig(GradientConfig):
    """DtD hyperparameters (see the module docstring for the noise formula).

    Attributes:
        steps: T, descent steps on Dr (batches of ``batch_size``) per update.
        epsilon, delta: the target unlearning guarantee.
        lipschitz, smoothness, strong_convexity: L, beta, m of the formula (heuristic for deep nets).
        sigma: the noise standard deviation; ``None`` computes it from the formula.
        radius: project iterates onto the L2 ball of this radius around the original weights (``None``:
            no projection).
    """

    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "sgd"
    momentum: float = 0.0
    epochs: int = 1
    selection: Literal["calibrated", "last"] = "last"
    steps: int = 10
    epsilon: float = 1.0
    delta: float = 1e-5
    lipschitz: float = 1.0
    smoothness: float = 1.0
    strong_convexity: float = 0.1
    sigma: float | None = None
    radius: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        check(self.epsilon > 0, f"epsilon must be > 0, got {self.epsilon}")
        check(0 < self.delta < 1, f"delta must be in (0, 1), got {self.delta}")
        check(0 < self.strong_convexity < self.smoothness,
              f"need 0 < strong_convexity < smoothness, got {self.strong_convexity}, {self.smoothness}")
        check(self.lipschitz > 0, f"lipschitz must be > 0, got {self.lipschitz}")
        check(self.sigma is None or self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}")
        check(self.radius is None or self.radius > 0, f"radius must be > 0, got {self.radius}")


def dtd_sigma(n: int, cfg: DtDConfig) -> float:
    """The noise standard deviation of the perturbed-gradient-descent theorem (module docstring)."""
    if cfg.sigma is not None:
        return cfg.sigma
    m, beta, L, T = cfg.strong_convexity, cfg.smoothness, cfg.lipschitz, cfg.steps
    gamma_t = ((beta - m) / (beta + m)) ** T
    log_inv_delta = math.log(1.0 / cfg.delta)
    gap = math.sqrt(log_inv_delta + cfg.epsilon) - math.sqrt(log_inv_delta)
    return 4.0 * math.sqrt(2.0) * L * gamma_t / (m * max(n, 1) * (1.0 - gamma_t) * gap)


@register_method
class DtD(GradientMethod):
    __doc__ = __doc__
    name = "dtd"
    aliases = ("descent-to-delete",)
    summary = "A few (projected) gradient-descent steps on Dr, then Gaussian noise on the weights."
    citation = "Neel, Roth & Sharifi-Malvajerdi, Descent-to-Delete, ALT 2021 (arXiv:2007.02923)"
    Config = DtDConfig

    def setup(self, trainer: Trainer, cfg: DtDConfig) -> None:
        """Keep a copy of the original trainable weights (``trainer.anchor``), the centre of the projection ball."""
        trainer.anchor = {n: p.detach().clone() for n, p in trainer.params}

    def _project(self, trainer: Trainer, radius: float) -> None:
        with torch.no_grad():
            diffs = [p - trainer.anchor[n] for n, p in trainer.params]
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(d) for d in diffs])))
            if norm > radius:
                scale = radius / norm
                for (n, p), d in zip(trainer.params, diffs):
                    p.copy_(trainer.anchor[n] + d * scale)

    def train_epoch(self, trainer: Trainer, cfg: DtDConfig) -> None:
        """``cfg.steps`` descent steps of the training loss on Dr batches (each projected when ``radius`` is set)."""
        done = 0
        while done < cfg.steps:
            progressed = False
            for dr in trainer.retain_batches():
                progressed = True
                if not trainer.step(trainer.student.training_loss(dr), phase="descent"):
                    return
                if cfg.radius is not None:
                    self._project(trainer, cfg.radius)
                done += 1
                if done >= cfg.steps:
                    break
            if not progressed:
                return

    def finish(self, trainer: Trainer, cfg: DtDConfig) -> bool:
        """Add ``N(0, sigma^2)`` noise (:func:`dtd_sigma`) to every trainable parameter; always True."""
        sigma = dtd_sigma(len(trainer.ctx.retain), cfg)
        with torch.no_grad():
            for _, p in trainer.params:
                noise = torch.randn(p.shape, generator=trainer.generator, dtype=torch.float32)
                p.add_(noise.to(device=p.device, dtype=p.dtype) * sigma)
        trainer.log.append({"phase": "noise", "sigma": sigma, "retain_pairs": len(trainer.ctx.retain)})
        return True
