"""Trained coders: the Coder interface and its registry, the training data mix, and each coder kind
(fastText, sentence embeddings + a linear classifier, and their ensemble)."""
