"""The main job (``latentdirs run``): data, generators, directions, analysis and report, resumable."""
