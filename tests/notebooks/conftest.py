def pytest_configure(config):
    config.addinivalue_line("markers", "notebook: executes a notebook in a Jupyter kernel (part of the default run)")
