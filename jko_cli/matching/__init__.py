"""Conditional flow matching (``method=cfm``) on JKO-Flow's potential network: the coupling of a batch of data
with Gaussian draws (coupling.py) and the regression loss of the velocity field v = −∇ₓΦ (loss.py).

The flow it learns is one block of the composed flow, integrated, evaluated and sampled exactly like a
JKO-Flow block (exact Laplacian along the ODE for the likelihood)."""
