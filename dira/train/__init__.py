"""Training stage: the pre-training and fine-tuning loops, checkpoints and resume.

Devices, threads, seeding and collectives live below it, in :mod:`dira.runtime`.
"""
