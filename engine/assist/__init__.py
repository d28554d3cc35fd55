"""Coding assistance: suggestions for one text, batch coding of a file, and the batch review queue."""
