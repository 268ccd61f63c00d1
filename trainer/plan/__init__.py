"""Planning before a run: the planner (time, tokens, epochs, FLOPs), the memory model, the batch finder's
probe, and the history of earlier runs that calibrates it. Imports train/ and everything below it.
"""
