"""Watching a run: typed events and the run log (events.jsonl), measured figures (MFU, ETA, memory),
the device and its peak FLOP/s, and the health checks. Imports only trainer/config.py and errors.py.
"""
