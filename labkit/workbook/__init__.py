"""What only the notebooks need: the config form, checkpoints, the environment doctor, the headless runner.

`bootstrap.py` here is also run as a plain script by `make` (system Python, no labkit imports) to install
what the lab needs on the machine.
"""
