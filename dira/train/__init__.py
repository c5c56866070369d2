"""Training stage: the pre-training and fine-tuning loops, checkpoints and resume, devices and seeding."""
