"""The post-processing `entropy-mcmc sample` does, importable without torch (the peer process scripts reuse it)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import List, Optional


def summary_while_writing(idata, out: Optional[str] = None, full: bool = False, max_bytes: Optional[float] = None):
    """The summary of `idata` (`diagnostics.lean_summary`, within `max_bytes`; `full`: `az.summary` with HDIs),
    with `idata` written to NetCDF at `out` meanwhile on a second thread, uncompressed: zlib took 13 s of
    4096 chains x 300 draws x 25 dims (loaded 2-core machine) to save a quarter of the file.
    """
    import arviz as az

    from ..diagnostics.summary import lean_summary

    error: List[BaseException] = []
    writer = None
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write():
            try:
                idata.to_netcdf(str(path), compress=False)
            except BaseException as err:  # re-raised on the calling thread
                error.append(err)

        writer = threading.Thread(target=write, name="netcdf-writer")
        writer.start()
    try:
        summary = az.summary(idata, round_to="none") if full else lean_summary(idata, max_bytes=max_bytes)
    finally:
        if writer is not None:
            writer.join()
    if error:
        raise error[0]
    return summary


def ess_line(summary, sampling_time: float, total_time: float, total_label: str, digits: int = 1) -> str:
    """"min ESS bulk .., min ESS tail .., max R-hat .., min ESS/s .. (sampling), .. (`total_label`)"."""
    min_ess = float(summary["ess_bulk"].min())
    return (f"min ESS bulk {min_ess:.0f}, min ESS tail {float(summary['ess_tail'].min()):.0f}, max R-hat "
            f"{float(summary['r_hat'].max()):.4f}, min ESS/s {min_ess / sampling_time:.{digits}f} (sampling), "
            f"{min_ess / total_time:.{digits}f} ({total_label})")


def report_process(idata, out: Optional[str], show_summary: bool, header: str, sampling_time: float,
                   t_start: float, digits: int = 2) -> None:
    """What a peer process script prints at its end: the summary (NetCDF written meanwhile), `header`, and
    the `ess_line` over sampling and over the whole script since `t_start`."""
    summary = summary_while_writing(idata, out)
    if show_summary:
        print(summary.round(4).to_string())
    wall = time.perf_counter() - t_start
    print(header)
    print(ess_line(summary, sampling_time, wall, f"whole script after interpreter start, {wall:.2f} s", digits))
