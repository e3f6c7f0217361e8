"""The same seed, the same numbers, on any x86-64 CPU: XLA's CPU instruction set pinned to AVX2.

XLA compiles for the CPU it runs on. On a CPU with AVX-512 it emits wider vector code, and a
sum vectorised 16 lanes wide adds its terms in another order than one vectorised 8 lanes wide:
the results differ in the last bits, and over thousands of updates a last-bit difference grows
into a different run. So, unless told otherwise, ``advantage`` caps XLA's instruction set at
``AVX2`` (with FMA, present on x86-64 CPUs since 2013-2015) by appending
``--xla_cpu_max_isa=AVX2`` to ``XLA_FLAGS`` when the package is imported, before JAX starts
its CPU back end.

Pinning the instruction set is not enough between CPU vendors: XLA computes ``rsqrt`` (and
``x / sqrt(y)``, which it rewrites to ``x * rsqrt(y)``: RMSProp, observation normalisation) from
the CPU's approximate ``vrsqrtps`` refined by Newton steps, and Intel's and AMD's approximations
differ in the last bits. So the pin also appends ``--xla_cpu_enable_platform_dependent_math=false``:
the same results on an Intel and an AMD CPU.

* A user who sets ``--xla_cpu_max_isa`` (or ``--xla_cpu_enable_platform_dependent_math``) in
  ``XLA_FLAGS`` keeps their own value.
* ``ADVANTAGE_NATIVE_ISA=1`` (or ``advantage train --native-isa``) lifts the pin: XLA then
  uses every instruction the CPU has, which may be faster and is not reproducible elsewhere.
* The pin is applied only on x86-64; ARM and GPUs are not covered (docs/reproducibility.md).
"""

from __future__ import annotations

import os
import platform
import re

#: The instruction set XLA's CPU code is capped at by default.
PINNED_ISA = "AVX2"
#: Set to 1 to let XLA use the CPU's full instruction set (not reproducible across CPUs).
NATIVE_ENV = "ADVANTAGE_NATIVE_ISA"

_FLAG = "--xla_cpu_max_isa"
#: XLA's CPU math from the CPU's own approximations (``vrsqrtps``): off, as it differs between vendors.
_MATH_FLAG = "--xla_cpu_enable_platform_dependent_math"
_added: str | None = None  # the exact text this module appended to XLA_FLAGS, if any


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def backend_started() -> bool:
    """Whether JAX has already created its back ends (then a change of ``XLA_FLAGS`` has no effect)."""
    import sys

    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # a JAX without this function: assume the worst
        return True


def pin_isa(environ=os.environ) -> None:
    """Append ``--xla_cpu_max_isa=AVX2`` and ``--xla_cpu_enable_platform_dependent_math=false`` to
    ``XLA_FLAGS``, each unless the user set it, and neither if the user asked for the native
    instruction set (``ADVANTAGE_NATIVE_ISA=1``) or the machine is not x86-64."""
    global _added
    flags = environ.get("XLA_FLAGS", "")
    pins = [f"{flag}={value}" for flag, value in ((_FLAG, PINNED_ISA), (_MATH_FLAG, "false")) if flag not in flags]
    if _added is not None or not pins or _truthy(environ.get(NATIVE_ENV)) or not _is_x86_64():
        return
    if backend_started():  # too late: XLA has read its flags; say so rather than record a pin that is not there
        import warnings

        warnings.warn(
            "JAX had started before advantage was imported, so XLA's CPU code is not pinned to AVX2 in "
            "this process and results may differ in the last bits from other CPUs. Import advantage "
            "first, or set XLA_FLAGS='--xla_cpu_max_isa=AVX2 --xla_cpu_enable_platform_dependent_math=false' before "
            "starting Python (docs/reproducibility.md).",
            stacklevel=3,
        )
        return
    _added = " ".join(pins)
    environ["XLA_FLAGS"] = f"{flags} {_added}".strip()


def use_native_isa(environ=os.environ) -> None:
    """Lift the pin (``advantage train --native-isa``). Must run before JAX starts its back end."""
    global _added
    environ[NATIVE_ENV] = "1"
    if _added is None:
        return
    if backend_started():
        from advantage.errors import RunError

        raise RunError(
            "the native instruction set must be chosen before JAX starts: set ADVANTAGE_NATIVE_ISA=1 in "
            "the environment before starting Python (or pass --native-isa to advantage train)"
        )
    flags = environ.get("XLA_FLAGS", "")
    environ["XLA_FLAGS"] = " ".join(f for f in flags.split() if f not in _added.split())
    _added = None


def isa() -> str:
    """The instruction set XLA's CPU code is limited to in this process: ``AVX2`` (the pin), the
    user's own ``--xla_cpu_max_isa`` value, or ``native``."""
    match = re.search(rf"{_FLAG}=(\S+)", os.environ.get("XLA_FLAGS", ""))
    return match.group(1) if match else "native"


def describe() -> dict:
    """What a run records about the CPU code it ran: the ISA cap, XLA_FLAGS, the CPU and its vector extensions."""
    return {
        "xla_cpu_isa": isa(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_vector_flags": _cpu_vector_flags(),
    }


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def _cpu_name() -> str:
    m = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.M)
    return m.group(1).strip() if m else platform.processor()


def _cpu_vector_flags() -> list[str]:
    m = re.search(r"^flags\s*:\s*(.+)$", _cpuinfo(), re.M)
    flags = m.group(1).split() if m else []
    return sorted(f for f in flags if f.startswith(("sse", "avx", "fma")))
