"""Data only: one TOML file per preset, with nanoGPT's key names. Loaded and validated by trainer.config."""
