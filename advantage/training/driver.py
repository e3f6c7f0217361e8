"""The public entry points of training, for the CLI, the labs and user code.

``train`` starts a run and ``resume`` continues one, both through the run session
(``session.py``) and the stepper that executes the run (``stepper.py``: chunked updates on the
JAX or Gymnasium back end; ``search.py``: population search); ``evaluate_run`` evaluates a saved
run again. Loading a saved run (``load_run_config``, ``load_agents``) lives in ``loading.py`` and
is importable from here, as before.
"""

from __future__ import annotations

from advantage.errors import RunError
from advantage.training.loading import load_agents, load_run_config
from advantage.training.session import default_run_dir, evaluate_run, resolve_backend, resume, train

__all__ = [
    "RunError",
    "default_run_dir",
    "evaluate_run",
    "load_agents",
    "load_run_config",
    "resolve_backend",
    "resume",
    "train",
]
