"""Run directories: starting a run (launch: run_training), listing runs, the run lock, the control channel
other processes steer a run through, summaries and nanoGPT log import. The top of the engine: it may import
every other room.
"""
