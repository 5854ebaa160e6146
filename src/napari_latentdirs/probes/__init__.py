"""Image probes: measurements of anatomical factors on model-space slices, which label latent
directions automatically."""
