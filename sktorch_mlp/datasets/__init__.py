"""Data sets shipped with the package, loaded offline in scikit-learn's loader style."""

from ._california_housing import load_california_housing

__all__ = ["load_california_housing"]
