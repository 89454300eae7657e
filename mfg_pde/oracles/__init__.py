"""Closed forms the package checks its solvers against (analytic)."""
