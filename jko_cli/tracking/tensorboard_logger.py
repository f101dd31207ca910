"""``logger=tensorboard``: event files in ``<run_dir>/tensorboard`` (``tensorboard --logdir`` a sweep dir)."""

from __future__ import annotations

import io
from pathlib import Path

from jko_cli.config import TrainConfig
from jko_cli.tracking.base import Tracker

LOG_SUBDIR = "tensorboard"


class TensorBoardTracker(Tracker):
    """Scalars per Adam step (adam/*) and per JKO step (jko/*), a sample image per JKO step, final/*.

    A resumed run opens a new event file in the same directory; TensorBoard shows the files as one run
    (the steps a resume repeats are identical: resumes are exact).
    """

    enabled = True

    def __init__(self, cfg: TrainConfig, run_dir: Path, data=None):
        from torch.utils.tensorboard import SummaryWriter

        super().__init__(cfg, data)
        self.images = cfg.logger.images
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / LOG_SUBDIR), flush_secs=30)
        self.writer.add_text("config", "```\n" + _config_text(cfg) + "\n```", 0)

    def write_scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def write_image(self, tag: str, png: bytes, step: int) -> None:
        import matplotlib.image

        rgb = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]  # (H, W, 3) floats in [0, 1]
        self.writer.add_image(tag, rgb, step, dataformats="HWC")

    def end(self, status: str) -> None:
        self.writer.close()


def _config_text(cfg: TrainConfig) -> str:
    from jko_cli.config import to_yaml

    return to_yaml(cfg).rstrip()
