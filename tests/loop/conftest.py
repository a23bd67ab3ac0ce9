from tests.datasets.conftest import make_service, payments  # noqa: F401  (fixtures shared with datasets)
