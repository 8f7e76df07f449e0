"""Updates confined to the directions the retained pairs do not use (``retain_subspace``).

An update of a linear layer ``y = W x + b`` changes the output of every input by ``dW x + db``. If the change
``[dW, db]`` is orthogonal to the span of the retained pairs' inputs ``[x, 1]``, every retained pair's output
is unchanged, and so is the output of any input inside that span: only what lies outside it (what the
retained pairs do not share with the deleted ones) can move. :class:`RetainedSubspace` finds, for each
updated ``nn.Linear`` the model's encoders reach, the smallest basis of the retained inputs that holds an
``energy`` share of their squared norm (an SVD of a sample of inputs computed by the frozen original), and
after every optimiser step removes from the layer's accumulated change ``[W - W0, b - b0]`` its component in
that basis. Projecting the accumulated change, not the gradient, keeps the constraint exact under Adam,
whose per-coordinate scaling would turn a projected gradient into a step outside the complement.

The basis of a layer after the first is computed on the original's inputs to it; the first layer's change
leaves those inputs unchanged for the retained span, so the constraint stays exact for inputs in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from graphdel.models.protocol import PairSampler

__all__ = ["RetainedSubspace", "energy_basis"]


def energy_basis(inputs: Tensor, energy: float) -> Tensor:
    """``[d, k]`` orthonormal columns spanning the top principal directions (uncentred) of ``inputs [N, d]``
    that hold at least an ``energy`` share of its squared Frobenius norm (``k >= 1``)."""
    _, s, vh = torch.linalg.svd(inputs.double(), full_matrices=False)
    share = torch.cumsum(s.square(), 0) / s.square().sum().clamp_min(1e-30)
    # the first k whose cumulative share reaches the energy (a tolerance for float round-off at 1.0)
    k = int(torch.searchsorted(share, torch.tensor([energy - 1e-12], dtype=share.dtype)).item()) + 1
    return vh[: min(k, vh.shape[0])].t().to(inputs.dtype)


@dataclass
class _Layer:
    name: str
    module: nn.Linear
    weight0: Tensor  # [d_out, d_in (+ 1)]: the original weight, its bias (if any) as the last column
    basis: Tensor    # [d_in (+ 1), k]


class RetainedSubspace:
    """The retained inputs' span of every updated linear layer, and the projection of each step's change.

    Args:
        student: the model being updated; its ``nn.Linear`` layers with a trainable weight are covered when
            ``teacher``'s ``encode_text`` or ``encode_x`` reaches the layer of the same name.
        teacher: the frozen original, whose layer inputs on ``retain`` define the span.
        retain: Dr; ``pairs`` of its pairs are drawn with ``generator`` (the same sample in every process).
        energy: share of the inputs' squared norm the kept basis holds, in ``(0, 1]``.
        pairs: at least this many retained pairs (whole batches) give the inputs; fewer when Dr has fewer.
        batch_size: pairs per forward pass while collecting the inputs.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, retain: PairSampler, energy: float, *,
                 pairs: int, generator: torch.Generator, batch_size: int = 256) -> None:
        linears = {name: m for name, m in student.named_modules()
                   if isinstance(m, nn.Linear) and m.weight.requires_grad}
        teacher_modules = dict(teacher.named_modules())
        inputs: dict[str, list[Tensor]] = {name: [] for name in linears}
        hooks = [teacher_modules[name].register_forward_pre_hook(
            lambda _m, args, name=name: inputs[name].append(args[0].detach().reshape(-1, args[0].shape[-1])))
            for name in linears]
        device = next(student.parameters()).device
        seen = 0
        try:
            with torch.no_grad():
                for part in retain.batches(batch_size, shuffle=True, generator=generator):
                    part = part.to(device)
                    teacher.encode_text(part.text)
                    if any(not v for v in inputs.values()):  # a layer on the item side: encode that too
                        teacher.encode_x(part.x)
                    seen += len(part)
                    if seen >= pairs:
                        break
        finally:
            for h in hooks:
                h.remove()
        self.layers: list[_Layer] = []
        #: ``{layer name: (kept basis size, width of the layer's inputs with the bias)}``, for the run's log
        self.sizes: dict[str, tuple[int, int]] = {}
        #: how many retained pairs the span was computed on
        self.pairs = seen
        for name, module in linears.items():
            if not inputs[name]:
                continue  # not reached by the encoders (a fusion layer): left unconstrained
            x = torch.cat(inputs[name])
            if module.bias is not None:  # the bias is the weight of a constant input 1
                x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], 1)
            basis = energy_basis(x, energy)
            self.layers.append(_Layer(name, module, _augmented(module).detach().clone(), basis))
            self.sizes[name] = (basis.shape[1], basis.shape[0])

    @torch.no_grad()
    def project(self) -> None:
        """Remove from each covered layer's change since the original its component in the retained span."""
        for layer in self.layers:
            delta = _augmented(layer.module) - layer.weight0
            delta -= (delta @ layer.basis) @ layer.basis.t()
            kept = layer.weight0 + delta
            width = layer.module.weight.shape[1]
            layer.module.weight.copy_(kept[:, :width])
            if layer.module.bias is not None:
                layer.module.bias.copy_(kept[:, width])


def _augmented(linear: nn.Linear) -> Tensor:
    """``[d_out, d_in (+ 1)]``: the weight, with the bias as its last column when the layer has one."""
    if linear.bias is None:
        return linear.weight
    return torch.cat([linear.weight, linear.bias[:, None]], 1)
