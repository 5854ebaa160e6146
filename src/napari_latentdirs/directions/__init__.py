"""Latent directions: the set format, the direction matrix, Voynov & Babenko's method and the
closed-form baselines."""
