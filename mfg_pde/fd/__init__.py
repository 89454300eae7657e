"""Finite-difference numerics (numba kernels and the sweeps built on them): the Engquist-Osher stencil and
its line solvers (kernels, tridiag), the HJB sweep backward (hjb), the FP sweep forward as its exact transpose
(fp), the residuals of the split discrete equations (discrete_residuals), transport by a prescribed velocity
(transport), and the data layout the kernels take (layout).  Imports only the model."""
