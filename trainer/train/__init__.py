"""Training: the Trainer (the order of a step and of a boundary), the learning-rate schedule, checkpoints
(the file and loading a model from one), controls and signals, resume checks, out-of-memory handling.
Imports model/, data/, observe/ and the top of trainer/.
"""
