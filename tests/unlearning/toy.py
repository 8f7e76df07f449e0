"""A toy model and data implementing the modality protocol, for testing the unlearning engine.

x is a float vector [8]; its "text" is TextFeatures hidden [T=4, H=16] made from a fixed linear map of x
(learnable alignment) plus item-specific noise (memorisable), with a random number of padded tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdel.models.protocol import ModalityModule, PairBatch, TextFeatures

N_ITEMS, X_DIM, T, H = 64, 8, 4, 16


class ToyData:
    def __init__(self, n: int = N_ITEMS, seed: int = 0, noise: float = 1.0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, X_DIM, generator=g)
        proj = torch.randn(X_DIM, T * H, generator=g) / math.sqrt(X_DIM)
        hidden = (self.x @ proj).view(n, T, H) + noise * torch.randn(n, T, H, generator=g)
        lengths = torch.randint(2, T + 1, (n,), generator=g)
        self.mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
        # padded positions hold garbage the model must ignore
        self.hidden = torch.where(self.mask.unsqueeze(-1), hidden, 50 * torch.randn(n, T, H, generator=g))

    def batch(self, index: Tensor) -> PairBatch:
        index = index.long()
        return PairBatch(self.x[index], TextFeatures(self.hidden[index], self.mask[index]), index.clone())


class ToySampler:
    """A PairSampler over a list of item indices."""

    def __init__(self, data: ToyData, indices) -> None:
        self.data = data
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)

    def __len__(self) -> int:
        return self.indices.numel()

    def sample(self, batch_size: int, generator: torch.Generator) -> PairBatch:
        n = len(self)
        if batch_size <= n:
            pick = torch.randperm(n, generator=generator)[:batch_size]
        else:
            pick = torch.randint(n, (batch_size,), generator=generator)
        return self.data.batch(self.indices[pick])

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False):
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for s in range(0, len(self), batch_size):
            idx = order[s:s + batch_size]
            if drop_last and idx.numel() < batch_size:
                return
            yield self.data.batch(self.indices[idx])


class ToyModel(ModalityModule):
    """MLP x encoder (with BatchNorm), masked-mean-pool + linear text encoder, MLP fusion on the
    concatenation, matching head, learnable logit scale."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.x_encoder = nn.Sequential(nn.Linear(X_DIM, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, d))
        self.text_proj = nn.Sequential(nn.Linear(H, 32), nn.ReLU(), nn.Linear(32, d))
        self.fusion = nn.Sequential(nn.Linear(2 * d, 32), nn.ReLU(), nn.Linear(32, d))
        self.match_head = nn.Linear(d, 1)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.1)))

    def encode_x(self, x: Tensor) -> Tensor:
        return F.normalize(self.x_encoder(x), dim=-1)

    def encode_text(self, text: TextFeatures) -> Tensor:
        m = text.mask.unsqueeze(-1).to(text.hidden.dtype)
        pooled = (text.hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def fuse(self, x: Tensor, text: TextFeatures, pairs: Tensor | None = None) -> Tensor:
        z_x, z_t = self.encode_x(x), self.encode_text(text)
        if pairs is not None:
            z_x, z_t = z_x[pairs[:, 0]], z_t[pairs[:, 1]]
        return self.fusion(torch.cat([z_x, z_t], dim=-1))

    def sim(self, z_x: Tensor, z_t: Tensor) -> Tensor:
        return z_x @ z_t.t()

    def logits(self, z_x: Tensor, z_t: Tensor) -> Tensor:
        return self.logit_scale.exp() * self.sim(z_x, z_t)

    def match_logits(self, fused: Tensor) -> Tensor:
        return self.match_head(fused).squeeze(-1)

    def _info_nce_parts(self, batch: PairBatch) -> tuple[Tensor, Tensor]:
        lg = self.logits(self.encode_x(batch.x), self.encode_text(batch.text))
        target = torch.arange(lg.size(0), device=lg.device)
        return (F.cross_entropy(lg, target, reduction="none"), F.cross_entropy(lg.t(), target, reduction="none"))

    def pair_losses(self, batch: PairBatch) -> Tensor:
        a, b = self._info_nce_parts(batch)
        return 0.5 * (a + b)

    def training_loss(self, batch: PairBatch) -> Tensor:
        contrastive = self.pair_losses(batch).mean()
        neg = batch.text.select(torch.roll(torch.arange(len(batch)), 1).to(batch.text.hidden.device))
        pos_logit = self.match_logits(self.fuse(batch.x, batch.text))
        neg_logit = self.match_logits(self.fuse(batch.x, neg))
        match = 0.5 * (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                       + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))
        return contrastive + match


def train_toy(sampler: ToySampler, *, steps: int = 300, lr: float = 1e-2, batch_size: int = 16,
              seed: int = 0) -> ToyModel:
    torch.manual_seed(seed)
    model = ToyModel()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        loss = model.training_loss(sampler.sample(batch_size, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def make_setup(seed: int = 0):
    """(data, original model, context kwargs): Df = 8 items, calibration = 8 never-trained items,
    val = 8 never-trained items, Dr = 40 items; the original is trained on Df + Dr."""
    data = ToyData(seed=seed)
    perm = torch.randperm(N_ITEMS, generator=torch.Generator().manual_seed(seed)).tolist()
    forget, calib, val, retain = perm[:8], perm[8:16], perm[16:24], perm[24:]
    original = train_toy(ToySampler(data, forget + retain), seed=seed)
    samplers = dict(forget=ToySampler(data, forget), retain=ToySampler(data, retain),
                    calibration=ToySampler(data, calib), val=ToySampler(data, val))
    return data, original, samplers
