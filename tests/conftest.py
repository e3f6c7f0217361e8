import os

# Tests share one persistent compilation cache so a program compiled by one test is reused by the next.
os.environ.setdefault("ADVANTAGE_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "advantage", "jax-tests"))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
