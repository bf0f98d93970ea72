"""What a training run logs as it goes: rows appended to CSV files in the run folder, and the same figures as
TensorBoard scalars (when tensorboard imports; it is optional)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class RunLog:
    """CSV files and TensorBoard scalars under ``out_dir`` (TensorBoard in ``out_dir/tensorboard``)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._tensorboard: Any = None  # None: not opened yet; False: tensorboard is not installed

    def row(self, name: str, row: dict[str, Any]) -> None:
        """Append ``row`` to ``out_dir/name`` (a header first when the file is new)."""
        path = self.out_dir / name
        new = not path.is_file()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        """``values`` as TensorBoard scalars ``prefix/key`` at ``step``."""
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tensorboard = False
            else:
                self._tensorboard = SummaryWriter(str(self.out_dir / "tensorboard"))
        if self._tensorboard:
            for key, value in values.items():
                self._tensorboard.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self._tensorboard:
            self._tensorboard.close()
