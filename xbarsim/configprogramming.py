"""How a chip is programmed (``ChipConfig.programming``): one shot, or program-and-verify (docs/physics.md §2b).

``one_shot``: every device is written once with the write-noise law (``device.write_noise``). ``verify``: every
device runs an iterative program-and-verify loop (``crossbar/laws/verify.py``): read, then a ramp of RESET pulses
while the read is above the acceptance window, a ramp of SET pulses while it is below, again, until a read (and a
confirming read) falls inside the window or the pulse or iteration budget is spent. A device that does not
converge stays where it ended and is counted. The error it leaves emerges from the pulse model and the window.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from .configdevice import _Strict


class PulseModel(_Strict):
    """The conductance change of one pulse, uS: pulse k of a ramp (k = 0, 1, ...) steps by
    ``(step_us + step_pct % of |T - r|) * (1 + step_growth * k) * max(0, 1 + step_spread * n)``, r the last verify
    read and T the target (a pulse sized by the read error, as closed-loop iterative programming adjusts it), n ~ N(0, 1)
    per pulse (cycle-to-cycle spread), times the state factor: a SET pulse ``max(0, 1 - G / saturation_us)``, a
    RESET pulse ``reset_ratio * min(1, G / saturation_us)`` (soft bounds; 1 when saturation_us is None). G stays >= 0."""

    step_us: float = Field(0.0, ge=0, description="fixed part of the first pulse of a ramp's step, uS")
    step_pct: float = Field(0.0, ge=0, le=1000, description="part of the step proportional to the read's distance to the target, %")
    step_growth: float = Field(0.0, ge=0, description="relative growth of the step per further pulse of a ramp (a voltage ramp)")
    step_spread: float = Field(0.0, ge=0, le=10, description="relative std of each pulse's step, pulse to pulse")
    reset_ratio: float = Field(1.0, gt=0, description="a RESET step relative to a SET step")
    saturation_us: float | None = Field(None, gt=0, description="conductance at which SET steps vanish, uS (None: no state dependence)")

    @model_validator(mode="after")
    def _step(self) -> PulseModel:
        if self.step_us == 0 and self.step_pct == 0:
            raise ValueError("a pulse needs step_us > 0 or step_pct > 0")
        return self


class OneShotProgramming(_Strict):
    """Every device written once: ``device.write_noise`` gives the error."""

    method: Literal["one_shot"] = "one_shot"


class VerifyProgramming(_Strict):
    """Program-and-verify per device (module doc). The acceptance window is target +- w, w = window_us + window_pct % of
    the target, softly capped with window_max_us as window_max_us tanh(w / window_max_us); a verify read adds
    N(0, read_noise_us^2 + (read_noise_pct % of G)^2)."""

    method: Literal["verify"] = "verify"
    start: Literal["written", "reset"] = Field(
        "written", description="where the loop starts: written (after one write with device.write_noise) or reset (g_min)"
    )
    window_us: float = Field(0.0, ge=0, description="half-width of the acceptance window, uS")
    window_pct: float = Field(0.0, ge=0, le=100, description="half-width of the acceptance window, % of the target")
    window_max_us: float | None = Field(None, gt=0, description="soft cap of the half-width, uS: w becomes window_max_us tanh(w / window_max_us) (None: no cap)")
    floor: Literal["verify", "reset"] = Field(
        "verify", description="devices whose window reaches g_min (target - w <= g_min: targets at g_min, and those the loop "
        "cannot tell from the RESET state): verify (run the loop) or reset (one pulse, not verified: the write-noise law's draw)"
    )
    max_pulses: int = Field(30, ge=1, le=10000, description="pulses per ramp (one direction) at most")
    max_iterations: int = Field(50, ge=1, le=10000, description="iterations (a RESET ramp then a SET ramp) at most")
    confirm: bool = Field(True, description="read once more after a read inside the window, and go on if it is outside")
    read_noise_us: float = Field(0.0, ge=0, description="std of a verify read's noise, uS")
    read_noise_pct: float = Field(0.0, ge=0, le=100, description="std of a verify read's noise, % of G")
    pulse: PulseModel

    @model_validator(mode="after")
    def _window(self) -> VerifyProgramming:
        if self.window_us == 0 and self.window_pct == 0:
            raise ValueError("an acceptance window needs window_us > 0 or window_pct > 0")
        return self

    @property
    def events(self) -> int:
        """Random-draw slots a device may use: the first read, a pulse and read each, the confirming reads."""
        return 1 + self.max_iterations * (2 * self.max_pulses + 1)


ProgrammingConfig = Annotated[Union[OneShotProgramming, VerifyProgramming], Field(discriminator="method")]
