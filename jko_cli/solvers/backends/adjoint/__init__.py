"""The ``adjoint`` backend: closed-form stages and their exact discrete adjoint, in eager PyTorch.

    stage.py       one evaluation of ∇Φ, ∂tΦ and ΔΦ from the weights, without autograd (forward half)
    stage_vjp.py   its hand-derived reverse: cotangents of x and of every parameter
    steps.py       one explicit Runge–Kutta step on the augmented state, and its reverse
    integrate.py   the integration over [0, 1] and one autograd node for all of it (:class:`Kernels`)
    workspace.py   reused scratch buffers and row-stacked GEMM operands

The ``compile`` backend compiles the step functions of steps.py; the ``native`` kernel unpacks weights and
gradients through stage.py's :class:`~.stage.Weights` and stage_vjp.py's :class:`~.stage_vjp.Grads`.
"""
