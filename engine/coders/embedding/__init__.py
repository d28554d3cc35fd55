"""The embedding coder: sentence embeddings (a GGUF model run by llama.cpp), their project cache, and a
logistic-regression or nearest-neighbour classifier over them (the DICE design)."""
