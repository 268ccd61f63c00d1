"""The engine, headless (no UI imports), grouped in rooms: observe/, data/, model/, train/, plan/, runs/
(bottom to top; each imports only those below it), with config.py, nanogpt_config.py and errors.py at the
top, which every room may import. docs/ARCHITECTURE.md draws the house."""
