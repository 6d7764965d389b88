"""The per-operation cost table of a chip (``ChipConfig.cost``): energy, latency and area of one
ADC conversion, one DAC conversion, one device read and one digital accumulation.

Defaults are ISAAC's (Shafiee et al., "ISAAC: A Convolutional Neural Network Accelerator with
In-Situ Analog Arithmetic in Crossbars", ISCA 2016, Table 6; 32 nm CMOS, 1.2 GHz), per operation:

- ADC: 8-bit, 1.28 GS/s, 2 mW, 0.0012 mm^2 each (one per 128-column crossbar):
  2 mW / 1.28 GS/s = 1.5625 pJ and 1 / 1.28 GS/s = 0.78125 ns per conversion, 1200 um^2.
- DAC: 1-bit, 8 x 128 per in-situ multiply-accumulate unit (IMA), 4 mW and 0.00017 mm^2 together, each
  converting once per 100 ns crossbar cycle: 4 mW / 1024 x 100 ns = 0.390625 pJ and
  170 um^2 / 1024 = 0.166 um^2 per one-bit DAC.
- Crossbar: 128 x 128 cells, 0.3 mW and 0.0002 mm^2 each, read in 100 ns:
  0.3 mW x 100 ns / 16384 cells = 1.831 fJ and 25 um^2 / 16384 = 0.001526 um^2 per device.
- Shift-and-add: 4 per IMA, 0.2 mW together, fed by the IMA's 8 ADCs at 1.28 GS/s:
  0.2 mW / (8 x 1.28 GS/s) = 0.01953 pJ per ADC output accumulated.

- Programming (program-and-verify): one pulse 100 ns and 10 pJ, one verify read 200 ns (``PULSE_SOURCE``).

Every value can be replaced in a chip YAML (``cost: {adc_energy_pj: ...}``) or with
``cfg.with_values({"cost.adc_energy_pj": ...})``; docs/cost.md states the model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ISAAC_SOURCE = "ISAAC (Shafiee et al., ISCA 2016), Table 6"
# NeuRRAM's program_increment drives pulses of pulse_width=1e-7 s (100 ns) and reads with t_delta 20 cycles of
# 10 ns (github weierwan/Neurram_48core, python/wupdate_control.py); the energy of a pulse is an order of magnitude
# (a 100 ns pulse of ~1.5 V at ~100 uA is 15 pJ), not a measured figure: set it from your device
PULSE_SOURCE = "NeuRRAM's wupdate_control.py timing; energy an order of magnitude"


class CostConfig(BaseModel):
    """Energy (pJ), latency (ns) and area (um^2) of each operation; see the module doc for sources."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    technology_nm: float = Field(32.0, gt=0, description="technology node the figures are for, nm (a label)")
    source: str = Field(ISAAC_SOURCE, description="where the figures come from (a label)")
    adc_energy_pj: float = Field(1.5625, ge=0, description="energy of one ADC conversion at adc_reference_bits, pJ")
    adc_latency_ns: float = Field(0.78125, ge=0, description="time of one ADC conversion, ns")
    adc_area_um2: float = Field(1200.0, ge=0, description="area of one ADC at adc_reference_bits, um^2")
    adc_reference_bits: int = Field(8, ge=1, le=24, description="resolution the ADC figures are for")
    adc_bits_scaling: float = Field(
        2.0, ge=1, le=4,
        description="ADC energy and area scale by this factor per bit away from adc_reference_bits (2: Walden's figure of merit)",
    )  # fmt: skip
    columns_per_adc: int = Field(128, ge=1, description="columns of a tile multiplexed onto one ADC")
    dac_energy_pj_per_bit: float = Field(0.390625, ge=0, description="energy of one DAC conversion per input bit, pJ")
    dac_area_um2_per_bit: float = Field(0.166015625, ge=0, description="area of one row's DAC per input bit, um^2")
    cell_read_energy_fj: float = Field(1.8310546875, ge=0, description="energy of one device read, fJ")
    cell_area_um2: float = Field(0.00152587890625, ge=0, description="area of one device, um^2")
    array_read_latency_ns: float = Field(100.0, ge=0, description="time of one tile read (the analog MVM), ns")
    accumulate_energy_pj: float = Field(0.01953125, ge=0, description="digital accumulation of one ADC output, pJ")
    ideal_adc_bits: int = Field(8, ge=1, le=24, description="ADC resolution costed when tile.adc.bits is None")
    ideal_dac_bits: int = Field(8, ge=1, le=24, description="DAC resolution costed when tile.dac.bits is None")
    pulse_energy_pj: float = Field(
        10.0, ge=0, description=f"energy of one programming pulse, pJ ({PULSE_SOURCE})"
    )
    pulse_latency_ns: float = Field(
        100.0, ge=0, description=f"duration of one programming pulse, ns ({PULSE_SOURCE})"
    )
    verify_read_latency_ns: float = Field(
        200.0, ge=0, description=f"duration of one verify read of one device, ns ({PULSE_SOURCE})"
    )

    def adc_energy_at(self, bits: int | None) -> float:
        """pJ per conversion of a ``bits``-bit ADC (``ideal_adc_bits`` when None)."""
        return self.adc_energy_pj * self._adc_factor(bits)

    def adc_area_at(self, bits: int | None) -> float:
        """um^2 of one ``bits``-bit ADC (``ideal_adc_bits`` when None)."""
        return self.adc_area_um2 * self._adc_factor(bits)

    def dac_bits(self, bits: int | None) -> int:
        return self.ideal_dac_bits if bits is None else bits

    def _adc_factor(self, bits: int | None) -> float:
        return self.adc_bits_scaling ** ((self.ideal_adc_bits if bits is None else bits) - self.adc_reference_bits)
