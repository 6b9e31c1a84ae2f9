"""The post-processing `entropy-mcmc sample` does, importable without torch (the peer process scripts reuse it)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional


def summary_while_writing(idata, out: Optional[str] = None):
    """`az.summary(idata)`, with `idata` written to NetCDF at `out` meanwhile on a second thread.

    Both take seconds for 256 chains x 1000 draws x 25 dims; they overlap because
    the NetCDF writer spends much of its time outside the GIL.
    """
    import arviz as az

    error: List[BaseException] = []
    writer = None
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write():
            try:
                idata.to_netcdf(str(path))
            except BaseException as err:  # re-raised on the calling thread
                error.append(err)

        writer = threading.Thread(target=write, name="netcdf-writer")
        writer.start()
    try:
        summary = az.summary(idata, round_to="none")
    finally:
        if writer is not None:
            writer.join()
    if error:
        raise error[0]
    return summary
