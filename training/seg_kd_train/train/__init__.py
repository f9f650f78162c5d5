"""Training: the loop, the distiller, training data, checkpoints and the run log."""
