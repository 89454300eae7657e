"""Registry of named problems with closed-form oracles.  ``names()`` lists them, ``get(name)``
returns one; ``get(name).run({'param': value})`` solves it and compares with its oracle."""

from .base import Case, CaseError, CaseRun, Check, Param, all_cases, get, names, register  # noqa: F401
from . import chaos, demand_response, diffusion, lqg, mean_interpolant, planning  # noqa: F401,E402  (registration side effects)
from . import exit_room  # noqa: F401,E402  (registration side effect)
from . import planning_congestion  # noqa: F401,E402  (registration side effect)
from . import stationary  # noqa: F401,E402  (registration side effect)
from . import social  # noqa: F401,E402  (registration side effect)
from . import hamiltonians  # noqa: F401,E402  (registration side effect)
from . import crowd_congestion  # noqa: F401,E402  (registration side effect)
from . import macro  # noqa: F401,E402  (registration side effect)
from . import two_crowds  # noqa: F401,E402  (registration side effect)
from . import switching  # noqa: F401,E402  (registration side effect)
