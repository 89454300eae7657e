"""Finite-difference numerics (numba kernels and the sweeps built on them): the Engquist-Osher stencil and
its line solvers (kernels, tridiag), the HJB sweep backward (hjb), the FP sweep forward as its exact transpose
(fp), the residuals of the split discrete equations (split_residuals), transport by a prescribed velocity
(transport), and a problem's operator in the layout the kernels take (operator).  Imports only the model."""
