"""Fine-tuning: settings and presets (settings.py, presets.py), memory/time estimates (estimate.py),
the run queue (runs.py) and the training worker process (worker.py).

Importing this package, settings, presets, estimate or runs must stay light (the web app imports them
at start): torch, transformers, trl, peft, datasets and bitsandbytes are imported inside functions only.
"""
