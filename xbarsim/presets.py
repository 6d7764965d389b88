"""The published chip presets, as plain data: ``ChipConfig.preset(name)`` validates one.

Each preset says where its numbers come from (``description``); ``PRESET_SOURCES`` gives a source per field
where a preset reproduces another simulator's defaults (``xbarsim info`` prints them).
"""

from __future__ import annotations

from typing import Any

_IDEAL_CONVERTER: dict[str, Any] = {"bits": None, "range": "none"}
_PCM_DEVICE: dict[str, Any] = {  # IBM's PCM statistical model, as in aihwkit's PCMLikeNoiseModel(g_max=25)
    "g_min_us": 0.0,
    "g_max_us": 25.0,
    "t0_s": 20.0,
    "write_noise": {"kind": "pcm"},
    "read_noise": {"kind": "pcm", "time": "per_epoch"},
    "drift": {"kind": "pcm"},
}

PRESETS: dict[str, dict[str, Any]] = {
    "ideal": {
        "name": "ideal",
        "description": "Noise-free devices and ideal converters: reproduces the float32 network.",
        "device": {"g_min_us": 0.0, "g_max_us": 25.0},
        "tile": {"rows": 512, "cols": 512, "dac": _IDEAL_CONVERTER, "adc": _IDEAL_CONVERTER},
    },
    "pcm": {
        "name": "pcm",
        "description": (
            "IBM PCM statistical model (Nandakumar et al. 2019; Joshi et al., Nat. Commun. 2020; "
            "aihwkit PCMLikeNoiseModel): g_max 25 uS, polynomial programming noise, "
            "conductance-dependent power-law drift, 1/f read noise drawn once per read epoch; 8-bit DAC (per-vector "
            "abs-max) and 8-bit ADC (bound 10, output noise 0.04) as in aihwkit's hardware-aware "
            "preset; global drift compensation; 512x512 tiles."
        ),
        "device": _PCM_DEVICE,
        "tile": {
            "rows": 512,
            "cols": 512,
            "dac": {"bits": 8, "range": "dynamic"},
            "adc": {"bits": 8, "range": "fixed", "bound": 10.0},
            "out_noise": 0.04,
        },
        "drift_compensation": "global",
    },
    "aihwkit": {
        "name": "aihwkit",
        "description": (
            "aihwkit 1.1's InferenceRPUConfig() defaults with PCMLikeNoiseModel(g_max=25) and "
            "GlobalDriftCompensation, to rerun an aihwkit study: weights unscaled (omega 0), digital bias, "
            "7-bit abs-max DAC, 9-bit ADC with bound 12, output noise 0.06, iterative bound management "
            "(max_bm_factor 1000, max_bm_res 0.25), IBM PCM devices with per-epoch 1/f read noise, 512x512 tiles."
        ),
        "device": _PCM_DEVICE,
        "tile": {
            "rows": 512,
            "cols": 512,
            "dac": {"bits": 7, "range": "dynamic"},
            "adc": {"bits": 9, "range": "fixed", "bound": 12.0},
            "out_noise": 0.06,
            "bound_management": "iterative",
            "bm_max_factor": 1000.0,
            "bm_max_res": 0.25,
        },
        "mapping": {"weight_scale": "none", "bias": "digital"},
        "drift_compensation": "global",
    },
    "rram": {
        "name": "rram",
        "description": (
            "RRAM-like: 1-100 uS, 5% proportional write error, 2% proportional read noise, "
            "BayesFT log-normal drift (sigma 0.1, +0.05 per decade), 0.1% stuck-on and 0.1% "
            "stuck-off devices; 8-bit converters, 256x256 tiles. Illustrative, not one measured "
            "device."
        ),
        "device": {
            "g_min_us": 1.0,
            "g_max_us": 100.0,
            "t0_s": 1.0,
            "write_noise": {"kind": "proportional", "sigma": 0.05},
            "read_noise": {"kind": "proportional", "sigma": 0.02},
            "drift": {"kind": "lognormal", "sigma": 0.1, "sigma_per_decade": 0.05},
            "faults": {"p_on": 0.001, "p_off": 0.001},
        },
        "tile": {
            "rows": 256,
            "cols": 256,
            "dac": {"bits": 8, "range": "dynamic"},
            "adc": {"bits": 8, "range": "fixed", "bound": 10.0},
            "out_noise": 0.02,
        },
    },
    "gaussian": {
        "name": "gaussian",
        "description": (
            "Additive Gaussian write (1 uS) and read (0.5 uS) noise on 0-25 uS devices, ideal "
            "converters, no drift: the paper-style noise studies."
        ),
        "device": {
            "g_min_us": 0.0,
            "g_max_us": 25.0,
            "write_noise": {"kind": "absolute", "sigma": 1.0},
            "read_noise": {"kind": "additive", "sigma": 0.5},
        },
        "tile": {"rows": 512, "cols": 512, "dac": _IDEAL_CONVERTER, "adc": _IDEAL_CONVERTER},
    },
}

# Where each field of a preset comes from (shown by `xbarsim info`), for presets that reproduce a source.
PRESET_SOURCES: dict[str, dict[str, str]] = {
    "aihwkit": {
        "device.g_max_us, g_min_us": "PCMLikeNoiseModel(g_max=25): SinglePairConductanceConverter(g_max=25, g_min=0)",
        "device.t0_s": "PCMLikeNoiseModel t_0 = 20.0",
        "device.write_noise": "PCMLikeNoiseModel prog_coeff = [0.26348, 1.9650, -1.1731] (uS, g_max reference 25)",
        "device.read_noise": "PCMLikeNoiseModel: 1/f, Q = min(0.0088 / (|G_prog|/g_max)^0.65, 0.2), t_read 250 ns, applied once in drift_weights(t)",
        "device.drift": "PCMLikeNoiseModel.generate_drift_coefficients: nu = |mu + sd n|",
        "tile.rows, tile.cols": "MappingParameter max_input_size = max_output_size = 512",
        "tile.dac": "IOParameters inp_res = 1/(2^7 - 2), inp_bound 1, noise_management ABS_MAX",
        "tile.adc": "IOParameters out_res = 1/(2^9 - 2), out_bound 12",
        "tile.out_noise": "IOParameters out_noise = 0.06",
        "tile.bound_management": "IOParameters bound_management ITERATIVE, max_bm_factor 1000, max_bm_res 0.25",
        "mapping.weight_scale": "MappingParameter weight_scaling_omega = 0 (InferenceRPUConfig)",
        "mapping.bias": "MappingParameter digital_bias = True",
        "drift_compensation": "InferenceRPUConfig drift_compensation = GlobalDriftCompensation()",
    },
}
