"""fwtui: a terminal console for pretraining GPT-2-style models on FineWeb."""

__version__ = "0.1.0"
