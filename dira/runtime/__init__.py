"""How this process runs: devices, threads, seeds and collectives.

Below every stage that trains or evaluates, so that methods and evaluation can use the collectives and
the device set-up without importing the training package that imports them.
"""
