"""DiRA reproduction pipeline: data, pre-training, fine-tuning, evaluation and reporting."""

__version__ = "0.1.0"
