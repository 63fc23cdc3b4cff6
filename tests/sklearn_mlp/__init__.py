"""scikit-learn's own MLP tests, run against bpfast.sklearn (see conftest.py)."""
