"""TransVW's self-discovery of anatomical visual words (``dira discover``): an autoencoder's features group the
LUNA16 patients, and crops at one coordinate of each group's nearest patients become a pseudo-labelled class.

The stage is :func:`dira.discovery.stage.discover`. Nothing is imported here, so that the processes reading scans
(:mod:`.volumes`, :mod:`.patches`) start without torch.
"""
