"""The solver methods jko-flow knows: one source of truth for their names (config validation uses these).

Fixed-step methods are explicit Runge–Kutta schemes given by their Butcher tableau (a, b, c): every
backend integrates the same tableau. Adaptive methods are torchdiffeq's, for evaluation and sampling only.
"""

from __future__ import annotations

# Butcher tableaux of the explicit schemes: ((stage s, [(j, a_sj), …]) per stage, b, c)
TABLEAUX = {
    "rk4": (((0, ()), (1, ((0, 0.5),)), (2, ((1, 0.5),)), (3, ((2, 1.0),))),
            (1 / 6, 1 / 3, 1 / 3, 1 / 6), (0.0, 0.5, 0.5, 1.0)),
    "euler": (((0, ()),), (1.0,), (0.0,)),
}
FIXED_METHODS = tuple(TABLEAUX)  # solver.method for training (and evaluation)
ADAPTIVE_METHODS = ("dopri5",)  # torchdiffeq's adaptive solvers: evaluate / sample only
METHODS = FIXED_METHODS + ADAPTIVE_METHODS


def tableau(method: str):
    """The Butcher tableau of a fixed-step method; ValueError naming the allowed ones otherwise."""
    if method not in TABLEAUX:
        raise ValueError(f"unknown solver method {method!r}; allowed: {', '.join(TABLEAUX)}")
    return TABLEAUX[method]
