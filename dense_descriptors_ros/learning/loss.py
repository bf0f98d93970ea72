"""Pixelwise contrastive loss (papers/000 eq. 1; Dense Object Nets' form).

For a match: D^2. For a non-match: max(0, M - D)^2, D the L2 distance of the two pixels' descriptors. The match
term is averaged over the valid matches; the non-match term over the *hard* non-matches (those still inside the
margin, Dense Object Nets' ``scale_by_hard_negatives``) or over all valid non-matches. With SAND channel groups
(papers/003 eqs. 8-9) each group is L2-normalised on its own and gets its own non-matches and margin; the group
losses are summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dense_descriptors_ros.features.sampling import sample_descriptor_maps


@dataclass
class LossConfig:
    margin: float = field(default=0.5, metadata={"help": "non-match margin M (unit-norm descriptors)", "range": (0, 2)})
    group_margins: list[float] = field(
        default_factory=list, metadata={"help": "margin of each channel group; empty: margin for all"}
    )
    scale_by_hard_negatives: bool = field(
        default=True, metadata={"help": "average the non-match term over non-matches inside the margin only"}
    )
    match_weight: float = field(default=1.0, metadata={"help": "weight of the match term", "range": (0, 100)})
    non_match_weight: float = field(default=1.0, metadata={"help": "weight of the non-match term", "range": (0, 100)})


def gather_descriptors(desc: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Descriptors at integer pixels (nearest): desc (B, D, H, W), points (B, ..., 2) -> (B, ..., D)."""
    b, d, h, w = desc.shape
    x = points[..., 0].round().long().clamp(0, w - 1)
    y = points[..., 1].round().long().clamp(0, h - 1)
    index = (y * w + x).reshape(b, 1, -1).expand(b, d, -1)
    gathered = desc.reshape(b, d, h * w).gather(2, index)
    return gathered.permute(0, 2, 1).reshape(*points.shape[:-1], d)


class PixelwiseContrastiveLoss(nn.Module):
    """Contrastive loss over sampled matches and non-matches of a batch of pairs."""

    def __init__(self, config: LossConfig | None = None, channel_groups: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.config = config or LossConfig()
        self.channel_groups = tuple(channel_groups)
        groups = max(1, len(self.channel_groups))
        margins = self.config.group_margins or [self.config.margin] * groups
        if len(margins) != groups:
            raise ValueError(f"group_margins has {len(margins)} value(s) for {groups} channel group(s)")
        self.margins = [float(m) for m in margins]

    def _split(self, desc: torch.Tensor) -> list[torch.Tensor]:
        if not self.channel_groups:
            return [desc]
        if sum(self.channel_groups) != desc.shape[1]:
            raise ValueError(f"channel_groups {self.channel_groups} do not sum to descriptor dim {desc.shape[1]}")
        return [F.normalize(part, dim=1) for part in torch.split(desc, list(self.channel_groups), dim=1)]

    def forward(
        self,
        desc_a: torch.Tensor,
        desc_b: torch.Tensor,
        matches_a: torch.Tensor,
        matches_b: torch.Tensor,
        match_valid: torch.Tensor,
        non_matches_b: torch.Tensor,
        non_match_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """desc_*: (B, D, H, W); matches_*: (B, M, 2); match_valid: (B, M); non_matches_b: (B, G, M, K, 2);
        non_match_valid: (B, G, M, K). Returns the total loss and its parts (floats) for logging."""
        groups_a, groups_b = self._split(desc_a), self._split(desc_b)
        if non_matches_b.shape[1] != len(groups_a):
            raise ValueError(
                f"non-matches are sampled for {non_matches_b.shape[1]} group(s), descriptors have {len(groups_a)}"
            )
        c = self.config
        valid = match_valid.float()
        num_matches = valid.sum().clamp(min=1.0)
        total = desc_a.new_zeros(())
        parts = {"match_loss": 0.0, "non_match_loss": 0.0}
        hard_total, nonmatch_total = 0.0, 0.0
        for g, (da, db) in enumerate(zip(groups_a, groups_b, strict=True)):
            # Not renormalised: an interpolated descriptor between pixels that differ is shorter than one, and the
            # match term sees that.
            anchor = sample_descriptor_maps(da, matches_a, normalize=False)  # (B, M, D)
            positive = sample_descriptor_maps(db, matches_b, normalize=False)
            match_loss = (((anchor - positive) ** 2).sum(-1) * valid).sum() / num_matches
            negative = gather_descriptors(db, non_matches_b[:, g])  # (B, M, K, D)
            distance = (anchor.unsqueeze(2) - negative).pow(2).sum(-1).clamp(min=1e-12).sqrt()
            nm_valid = non_match_valid[:, g].float()
            hinge = (self.margins[g] - distance).clamp(min=0.0).pow(2) * nm_valid
            hard = ((hinge > 0).float() * nm_valid).sum()
            denominator = hard if c.scale_by_hard_negatives else nm_valid.sum()
            non_match_loss = hinge.sum() / denominator.clamp(min=1.0)
            total = total + c.match_weight * match_loss + c.non_match_weight * non_match_loss
            parts["match_loss"] += float(match_loss.detach())
            parts["non_match_loss"] += float(non_match_loss.detach())
            if len(groups_a) > 1:
                parts[f"match_loss_g{g}"] = float(match_loss.detach())
                parts[f"non_match_loss_g{g}"] = float(non_match_loss.detach())
            hard_total += float(hard)
            nonmatch_total += float(nm_valid.sum())
        parts["hard_negative_fraction"] = hard_total / max(nonmatch_total, 1.0)
        parts["loss"] = float(total.detach())
        return total, parts
