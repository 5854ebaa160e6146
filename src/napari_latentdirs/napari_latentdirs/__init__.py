"""napari_latentdirs"""
