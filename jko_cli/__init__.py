"""jko-flow: JKO-Flow continuous normalizing flows from the command line."""

__version__ = "0.1.0"
