"""Temperature schedules for annealed Langevin sampling (thesis section 3.3): T as a function of the step index.

    schedule = make_schedule("thesis", num_steps=2700, t_max=100)   # the shape of Figure B.7B
    schedule(torch.tensor([0, 1000, 2699]))                          # temperatures at those steps

Every schedule holds its last temperature after its last step. Temperatures must be finite and >= 0
(T = 0 is a noiseless gradient step); anything else is a ValueError naming the step.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Union

import torch

SCHEDULES = ("thesis", "geometric", "linear", "cosine", "constant")


class TemperatureSchedule:
    """Temperatures T_0 ... T_{n-1} over `num_steps` steps (held at T_{n-1} after), from a table or a callable.

    `fn(step: int) -> float` schedules are evaluated lazily and checked at each new step index;
    `num_steps` is then None unless given.
    """

    def __init__(self, values: Optional[Sequence[float]] = None, fn: Optional[Callable[[int], float]] = None,
                 num_steps: Optional[int] = None, name: str = "custom"):
        if (values is None) == (fn is None):
            raise TypeError("a schedule needs either a table of temperatures or a callable of the step index")
        self.name = name
        self.fn = fn
        self._cache: Dict[int, float] = {}
        if values is not None:
            table = torch.as_tensor(values, dtype=torch.float64).flatten()
            if table.numel() == 0:
                raise ValueError("a temperature schedule needs at least one step")
            bad = ~torch.isfinite(table) | (table < 0)
            if bad.any():
                i = int(bad.nonzero()[0])
                raise ValueError(f"temperature schedule {name!r} has T={float(table[i])!r} at step {i}: temperatures "
                                 "must be finite and >= 0 (the schedule must end at or above T=0)")
            self.table = table
            self.num_steps = table.numel()
        else:
            if not callable(fn):
                raise TypeError(f"a schedule callable must be callable, got {type(fn).__name__}")
            self.table = None
            self.num_steps = num_steps

    def _value(self, i: int) -> float:
        if i not in self._cache:
            t = float(self.fn(i))
            if not (math.isfinite(t) and t >= 0):
                raise ValueError(f"temperature schedule {self.name!r} gave T={t!r} at step {i}: temperatures must be "
                                 "finite and >= 0")
            self._cache[i] = t
        return self._cache[i]

    def __call__(self, step: torch.Tensor) -> torch.Tensor:
        """T at each step index of `step` (an integer tensor), as float64 on its device."""
        step = torch.as_tensor(step)
        if self.table is not None:
            idx = step.clamp(0, self.num_steps - 1).to(torch.long)
            return self.table.to(step.device)[idx]
        if self.num_steps is not None:
            step = step.clamp(max=self.num_steps - 1)
        uniq = torch.unique(step).tolist()
        if len(uniq) == 1:
            return torch.full(step.shape, self._value(int(uniq[0])), dtype=torch.float64, device=step.device)
        return torch.tensor([self._value(int(i)) for i in step.flatten().tolist()],
                            dtype=torch.float64, device=step.device).view(step.shape)

    def values(self) -> torch.Tensor:
        """The temperature of every step, `[num_steps]` (float64)."""
        if self.num_steps is None:
            raise ValueError(f"schedule {self.name!r} is an open-ended callable; give num_steps")
        return self(torch.arange(self.num_steps))

    def __repr__(self) -> str:
        return f"TemperatureSchedule({self.name!r}, num_steps={self.num_steps})"


def thesis_shape(num_steps: int = 2700, t_max: float = 100.0, t_min: float = 1.0) -> torch.Tensor:
    """The shape of Figure B.7B: hold T_max for 500/2700 of the steps, cool geometrically to T_min over the
    next 2000/2700, then linearly from T_min to 0 over the last 200/2700 (2700 steps in the thesis)."""
    hold = round(num_steps * 500 / 2700)
    final = round(num_steps * 200 / 2700)
    cool = num_steps - hold - final
    parts = [torch.full((hold,), float(t_max), dtype=torch.float64)]
    if cool > 0:
        parts.append(t_max * (t_min / t_max) ** (torch.arange(cool, dtype=torch.float64) / cool))
    if final > 0:
        parts.append(torch.linspace(t_min, 0.0, final, dtype=torch.float64))
    return torch.cat(parts)


def make_schedule(spec: Union[str, float, Sequence[float], Callable[[int], float], TemperatureSchedule] = "thesis",
                  num_steps: Optional[int] = 2700, t_max: float = 100.0, t_min: float = 1.0) -> TemperatureSchedule:
    """A schedule from a name ("thesis", "geometric", "linear", "cosine" from `t_max` to `t_min`, or "constant"
    at `t_max`), a number (constant), a sequence of temperatures, a callable of the step index, or a schedule.

    The named schedules other than "thesis" end at `t_min` (>= 0); "thesis" ends at 0.
    """
    if isinstance(spec, TemperatureSchedule):
        return spec
    if isinstance(spec, bool):
        raise TypeError("a temperature schedule cannot be a bool")
    if isinstance(spec, (int, float)):
        return TemperatureSchedule([float(spec)], name="constant")
    if isinstance(spec, str):
        if spec not in SCHEDULES:
            raise ValueError(f"unknown temperature schedule {spec!r}; expected one of {', '.join(SCHEDULES)}, a "
                             "number, a sequence of temperatures or a callable")
        if num_steps is None or int(num_steps) < 1:
            raise ValueError(f"schedule {spec!r} needs num_steps >= 1, got {num_steps!r}")
        if not (0 <= t_min <= t_max < math.inf):
            raise ValueError(f"schedule {spec!r} needs 0 <= t_min <= t_max < inf, got t_min={t_min}, t_max={t_max}")
        n = int(num_steps)
        u = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
        if spec == "thesis":
            values = thesis_shape(n, t_max, min(t_min, t_max))
        elif spec == "geometric":
            if t_min == 0:
                raise ValueError("a geometric schedule needs t_min > 0 (use 'thesis' or 'cosine' to end at 0)")
            values = t_max * (t_min / t_max) ** u
        elif spec == "linear":
            values = t_max + (t_min - t_max) * u
        elif spec == "cosine":
            values = t_min + 0.5 * (t_max - t_min) * (1 + torch.cos(math.pi * u))
        else:
            values = torch.full((n,), float(t_max), dtype=torch.float64)
        return TemperatureSchedule(values, name=spec)
    if callable(spec):
        return TemperatureSchedule(fn=spec, num_steps=num_steps, name=getattr(spec, "__name__", "callable"))
    return TemperatureSchedule(list(spec) if not isinstance(spec, torch.Tensor) else spec, name="table")


__all__ = ["TemperatureSchedule", "make_schedule", "thesis_shape", "SCHEDULES"]
