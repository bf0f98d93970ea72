"""The appearance memory of the ``propagate`` tracking strategy: what each track looked like, bounded per track.

Each track keeps M descriptors (N, M, D): slot 0 is the descriptor it was created with and is never replaced; slots
1..M-1 are a ring of confident past appearances, written only when a match was unambiguous, forward-backward
consistent and unlike every appearance already remembered. Scores against the memory are the best cosine
similarity over the remembered appearances; :class:`MemoryAppearance` blends them with the track's descriptor in the
previous frame (the frame-to-frame template), so slow appearance change is followed while the memory keeps the
template from wandering off the point, and scores the memory alone for re-detection after occlusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch


@dataclass(frozen=True)
class MemoryAppearance:
    """Scores against each track's memory (N, M, D) with validity (N, M), blended with a template (N, D) if given."""

    bank: torch.Tensor
    valid: torch.Tensor
    template: torch.Tensor | None = None
    memory_weight: float = 1.0  # weight of the memory score in the blend with the template

    @cached_property
    def _filled(self) -> torch.Tensor:
        """The bank with every empty slot holding the creation descriptor (slot 0, always valid): a best score over
        all slots is then the best over the valid ones, without masking the (much larger) score tensors."""
        return torch.where(self.valid[:, :, None], self.bank, self.bank[:, :1])

    def memory_scores(self, descriptors: torch.Tensor) -> torch.Tensor:
        """(N,) best similarity of one descriptor per track (N, D) to that track's memory."""
        return torch.einsum("nmd,nd->nm", self._filled, descriptors).amax(1)

    def window_scores(self, windows: torch.Tensor) -> torch.Tensor:
        if self.template is None:
            return torch.bmm(windows, self._filled.transpose(1, 2)).amax(2)
        # One product for the memory and the template (its last column): the windows are read once.
        sims = torch.bmm(windows, torch.cat([self._filled, self.template[:, None]], 1).transpose(1, 2))
        return (1.0 - self.memory_weight) * sims[..., -1] + self.memory_weight * sims[..., :-1].amax(2)

    def image_scores(self, cells: torch.Tensor) -> torch.Tensor:
        # Each remembered appearance scored once (lost tracks hold about one of their M slots), best per track.
        rows, slots = torch.nonzero(self.valid, as_tuple=True)
        sims = self.bank[rows, slots] @ cells.T
        memory = sims.new_full((len(self.bank), len(cells)), float("-inf"))
        memory.scatter_reduce_(0, rows[:, None].expand_as(sims), sims, "amax")
        if self.template is None:
            return memory
        return (1.0 - self.memory_weight) * (self.template @ cells.T) + self.memory_weight * memory


def new_memory(references: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Memories (N, size, D) holding only the creation descriptors (N, D), their validity and next ring slots."""
    n, d = references.shape
    bank = torch.zeros(n, size, d, device=references.device, dtype=references.dtype)
    bank[:, 0] = references
    valid = torch.zeros(n, size, dtype=torch.bool, device=references.device)
    valid[:, 0] = True
    return bank, valid, torch.ones(n, dtype=torch.long, device=references.device)


def remember(
    bank: torch.Tensor, valid: torch.Tensor, next_slot: torch.Tensor, rows: torch.Tensor, descriptors: torch.Tensor
) -> None:
    """Write ``descriptors`` (R, D) into the ring slots of tracks ``rows`` (in place; oldest appearance first out)."""
    size = bank.shape[1]
    if size < 2 or len(rows) == 0:
        return  # the creation descriptor alone: nothing more to keep
    slots = next_slot[rows]
    bank[rows, slots] = descriptors
    valid[rows, slots] = True
    next_slot[rows] = slots % (size - 1) + 1
