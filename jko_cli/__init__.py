"""jko-flow: JKO-Flow continuous normalizing flows from the command line and from Python.

``from jko_cli import JKOFlow``: the scikit-learn style estimator (jko_cli/api.py), imported on first use so
that ``jko-flow --help`` does not load PyTorch.
"""

__version__ = "0.1.0"
__all__ = ["JKOFlow", "__version__"]


def __getattr__(name: str):
    if name == "JKOFlow":
        from jko_cli.api import JKOFlow

        return JKOFlow
    raise AttributeError(f"module 'jko_cli' has no attribute {name!r}")
