"""U-Net (Ronneberger et al. 2015) segmentation pipeline for microscopy."""

__version__ = "0.1.0"
