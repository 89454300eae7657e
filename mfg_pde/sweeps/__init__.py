"""Parameter studies: a registered case run over the product of parameter values on a ``dask.distributed``
cluster (or in this process), gathered into one ``xarray.Dataset`` with the varied parameters as dimensions,
checkpointed to netCDF / zarr, resumable (``mfg-pde sweep``, ``mfg_pde.sweep`` = ``mfg_pde.sweeps.sweep``).

    >>> import mfg_pde as mp
    >>> ds = mp.sweep("lqg", vary={"beta": [1, 2, 4], "N": "100,200,400"}, out="study.nc")
    >>> ds.error_mean.plot(x="N", hue="beta")

Layers: ``spec`` (the study: parsing ``--vary``), ``point`` (one point, as a worker runs it), ``store`` (the
Dataset and its file), ``run`` (``sweep``: the cluster, the checkpoints, progress).  This package sits above
the cases (it imports them) and below the command line; dask, distributed and xarray are imported only when a
sweep runs (optional extra ``[sweep]``).
"""

from .run import WarmUp, sweep
from .spec import Study, SweepError, parse_values

__all__ = ["Study", "SweepError", "WarmUp", "parse_values", "sweep"]
