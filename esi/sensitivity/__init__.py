"""Sensitivity analyses of the matched comparison (see the submodules)."""
