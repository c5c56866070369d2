"""The files `dira synth` leaves in a dataset root to say whose it is, read by the readers and the workflow."""

SYNTHETIC_MARKER = "dira_synthetic.json"  # written last: the synthetic set is complete, with its settings
WRITING_MARKER = "dira_synthetic.writing"  # written first, removed last: a set being written, or cut short
