"""The coupling loops: ``solve`` (the dispatcher behind ``mp.solve``), ``fixed_point`` (damped Picard,
fictitious play, Anderson: one loop), ``anderson`` (the mixing), ``auto`` (the default: Anderson, and a race
of loops when it is slow), ``monitor`` (history and progress), ``options`` (argument checks).

Nothing is imported here, so a lower layer can use ``iterate.fixed_point`` without loading the dispatcher."""
