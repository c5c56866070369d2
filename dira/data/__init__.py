"""Data stage: raw dataset readers, synthetic writers, preprocessing into HDF5 caches, torch datasets."""
