"""statcoder desktop: the Qt GUI over the engine facade. Nothing here re-implements engine logic."""
