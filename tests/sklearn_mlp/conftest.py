"""scikit-learn's own MLP tests (test_mlp.py, a copy) run against bpfast.sklearn.

test_mlp.py is scikit-learn 1.9.1's file with one change: MLPClassifier and
MLPRegressor are bpfast's BPClassifier and BPRegressor (a pure alias at its top).
The tests listed here, and only these, are expected to fail, each for the reason
given: they read scikit-learn's private attributes, which the drop-in does not
copy.
"""

import pytest

EXPECTED_FAILURES = {
    "test_gradient": "reads scikit-learn's private _loss_grad_lbfgs, _coef_indptr "
                     "(bpfast's L-BFGS objective is compared with it in "
                     "tests/test_sklearn_trajectory.py)",
    "test_learning_rate_warmstart": "reads scikit-learn's private _optimizer.learning_rate",
    "test_adaptive_learning_rate": "reads scikit-learn's private _optimizer.learning_rate",
}


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture (its conftest.py), at its default seed."""
    return 42


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.originalname if hasattr(item, "originalname") else item.name
        if item.path.name == "test_mlp.py" and name in EXPECTED_FAILURES:
            item.add_marker(pytest.mark.xfail(reason=EXPECTED_FAILURES[name], strict=True))
