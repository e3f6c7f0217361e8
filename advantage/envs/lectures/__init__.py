"""The lectures' own didactic environments, each registered under a Gymnasium-style id.

Importing this package registers them (``advantage envs`` lists them). Keep this file a
plain list of imports: each module registers its environments when imported.
"""

from advantage.envs.lectures import (  # noqa: F401
    access_control,
    aliased_gridworld,
    gridworld,
    one_state,
    rock_paper_scissors,
    tetris,
)
