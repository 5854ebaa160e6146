"""napari-latentdirs: interpretable latent directions of CT generative models."""

__version__ = "0.1.0"
