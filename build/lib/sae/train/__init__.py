"""Training, in the order it runs: harvest activations (harvest), serve them (datamodule), train and validate
(module, metrics), from the command line (cli; `train.py fit`)."""
