"""What is measured on a solution: residuals of the unsplit PDE (residuals), the Nash gap (exploitability),
the outflow balance through exits (outflow), and the sparse matrices of the discrete operators (matrices)."""
