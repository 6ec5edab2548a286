import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """On 2 shared CPU cores torch's OpenMP pool can stall for seconds on small tensors; one thread
    keeps the suite fast and its timings steady."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def _own_air_home(tmp_path_factory, monkeypatch):
    """Every test gets an empty local adapter store, never the user's."""
    monkeypatch.setenv("AIR_HOME", str(tmp_path_factory.mktemp("air_home")))
