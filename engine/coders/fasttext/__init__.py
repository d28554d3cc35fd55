"""The fastText coder: the model wrapper, training in a child process, and serving from a child process."""
