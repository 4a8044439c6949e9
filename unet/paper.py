"""The paper's results to compare against (Ronneberger, Fischer, Brox, MICCAI 2015).

Copied from the paper's two tables: the ISBI 2012 EM segmentation leaderboard (warping,
Rand and pixel error; u-net "averaged over 7 rotated versions of the input data") and the
ISBI 2015 cell tracking challenge segmentation ("IOU", the challenge's SEG measure) on
PhC-U373 and DIC-HeLa. ``None`` is a value the paper does not give.
"""

from __future__ import annotations

from typing import NamedTuple

REFERENCE = (
    "Ronneberger, Fischer, Brox: U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation, MICCAI 2015 (arXiv:1505.04597)"
)


class IsbiRow(NamedTuple):
    """One row of the paper's ISBI 2012 table (rank "-" for the human values)."""

    rank: str
    group: str
    warping_error: float
    rand_error: float
    pixel_error: float


ISBI_ROWS = (
    IsbiRow("-", "human values", 0.000005, 0.0021, 0.0010),
    IsbiRow("1", "u-net", 0.000353, 0.0382, 0.0611),
    IsbiRow("2", "DIVE-SCI", 0.000355, 0.0305, 0.0584),
    IsbiRow("3", "IDSIA", 0.000420, 0.0504, 0.0613),
    IsbiRow("4", "DIVE", 0.000430, 0.0545, 0.0582),
    IsbiRow("10", "IDSIA-SCI", 0.000653, 0.0189, 0.1027),
)
ISBI_DATA = (
    "ISBI 2012 EM segmentation challenge: the 30-slice test volume (512 x 512, serial-section "
    "TEM of the Drosophila ventral nerve cord), scored by the organisers"
)

CTC_DATASETS = ("PhC-U373", "DIC-HeLa")
CTC_ROWS: tuple[tuple[str, float | None, float | None], ...] = (
    ("IMCB-SG (2014)", 0.2669, 0.2935),
    ("KTH-SE (2014)", 0.7953, 0.4607),
    ("HOUS-US (2014)", 0.5323, None),
    ("second-best 2015", 0.83, 0.46),
    ("u-net (2015)", 0.9203, 0.7756),
)
CTC_DATA = (
    "ISBI 2015 cell tracking challenge, segmentation: PhC-U373 (phase contrast) and DIC-HeLa "
    "(differential interference contrast), scored by the organisers on their test sequences"
)
TIMING = (
    "the paper: segmentation of a 512 x 512 image in less than a second on a 2015 GPU; "
    "training 10 hours on an NVIDIA Titan (6 GB)"
)
