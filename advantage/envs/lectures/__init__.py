"""The lectures' own didactic environments, each registered under a Gymnasium-style id.

Importing this package registers them (``advantage envs`` lists them). Keep this file a
plain list of imports: each module registers its environments when imported.
"""

from advantage.envs.lectures import aliased_gridworld  # noqa: F401
from advantage.envs.lectures import one_state  # noqa: F401
from advantage.envs.lectures import rock_paper_scissors  # noqa: F401
from advantage.envs.lectures import gridworld  # noqa: F401
