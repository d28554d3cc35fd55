"""Evaluation of coders on real coded texts: metrics, the HTML report with charts."""
