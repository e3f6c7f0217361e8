"""The errors a user of ``advantage`` can meet, in one hierarchy.

Every problem with what a user gave (a config value, an environment, a run folder, a
checkpoint, the input of a report or a video, an optional package that is not installed)
is an :class:`AdvantageError` whose message says what was wrong and how to fix it. The
command line (``advantage.cli.main``) ends every one of them with that message and exit
code 2, never with a traceback; :class:`NonFiniteError` (a run diverged: not bad input)
ends with exit code 1.

Each class also derives from the built-in exception that the code raised before this
hierarchy existed (``ValueError``, ``KeyError``, ``FloatingPointError``,
``ModuleNotFoundError``), so that existing ``except`` clauses keep working. The classes
stay importable from the modules that raise them (``advantage.config.ConfigError``,
``advantage.training.driver.RunError``, ...).
"""

from __future__ import annotations


class AdvantageError(ValueError):
    """Base of every user-facing error: the message says what was wrong and how to fix it."""


class ConfigError(AdvantageError):
    """An invalid configuration value: the message names the field and the fix."""


class RunError(AdvantageError):
    """A user-facing problem with a run (bad folder, bad resume, an env that cannot be built, ...)."""


class CheckpointError(AdvantageError):
    """A missing or damaged checkpoint."""


class EnvError(AdvantageError):
    """An environment is unusable as given: a bad id, an API violation, a NaN, ..."""


class ReportError(AdvantageError):
    """A user-facing problem with the input of a report (not a run folder, nothing to report, ...)."""


class VideoError(RunError):
    """A user-facing problem with recording a video (no renderer, missing package, bad path, ...)."""


class UnknownNameError(AdvantageError, KeyError):
    """An unknown algorithm, environment or lab name; the message lists the close matches and the choices.

    A ``KeyError`` too (what ``algos.get`` and ``registry.spec`` raised before), but printed as its
    message, without the quotes ``KeyError`` adds."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingExtraError(AdvantageError, ModuleNotFoundError):
    """An optional package is needed and not installed; the message gives the ``pip install`` line."""


class NonFiniteError(AdvantageError, FloatingPointError):
    """A NaN or infinity appeared in training; the message says where first (the CLI exits with 1)."""


#: Every user-facing error class (tests/test_errors.py checks that each one subclasses AdvantageError).
ALL = (
    ConfigError,
    RunError,
    CheckpointError,
    EnvError,
    ReportError,
    VideoError,
    UnknownNameError,
    MissingExtraError,
    NonFiniteError,
)
