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

_EIGHT_BIT = {"dac": {"bits": 8, "range": "dynamic"}, "adc": {"bits": 8, "range": "fixed", "bound": 10.0}, "out_noise": 0.04}
_HERMES_CELL = [0.16603222, 4.71806468, -8.48101252, 4.68961419]  # hermes.py HermesNoiseModel.__init__, num_devices == 2
_NEURRAM_TIMES = [1.0, 86400.0, 172800.0]  # reram.py ReRamWan2022NoiseModel.__init__ coeff_dic keys (1 s, 1 d, 2 d)
_NEURRAM_FITS = [  # the same coeff_dic, reversed there ([::-1]) into c_0 .. c_4
    [0.348, 16.030, -43.853, 45.393, -16.815],
    [0.701, 22.086, -50.773, 47.095, -16.458],
    [0.782, 20.274, -43.507, 37.062, -11.934],
]

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
    "hermes": {
        "name": "hermes",
        "description": (
            "IBM HERMES 64-core PCM chip (Le Gallo et al., Nat. Electron. 2023), statistics from aihwkit 1.1.0's "
            "HermesNoiseModel: two devices per polarity of 10.35 uS each (20.7 uS a cell), programmed by "
            "program-and-verify (at most 30 iterations) to the two-device programming spread; drift and 1/f read "
            "noise as measured on the two-device cell (one exponent and one deviation per cell, t0 300 s); 256x256 "
            "cores, 8-bit inputs and outputs, global drift compensation."
        ),
        "device": {
            "g_min_us": 0.0,
            "g_max_us": 10.35,
            "t0_s": 300.0,
            "write_noise": {"kind": "polynomial", "coefficients": _HERMES_CELL, "g_max_reference_us": 20.7, "fitted_on": "cell"},
            "read_noise": {"kind": "hermes", "fit": "two_devices", "t_read_s": 512e-9, "time": "per_epoch"},
            "drift": {"kind": "hermes", "fit": "two_devices"},
        },
        "tile": {"rows": 256, "cols": 256, **_EIGHT_BIT},
        "mapping": {"devices_per_polarity": 2},
        "programming": {
            "method": "verify", "start": "reset", "floor": "reset", "window_us": 0.107, "window_pct": 69.8, "window_max_us": 1.28,
            "read_noise_us": 0.0204, "read_noise_pct": 2.05, "max_pulses": 30, "max_iterations": 30,
            "pulse": {"step_pct": 100.0, "step_spread": 0.772, "reset_ratio": 0.976},
        },
        "drift_compensation": "global",
    },
    "neurram": {
        "name": "neurram",
        "description": (
            "NeuRRAM RRAM chip (Wan et al., Nature 2022), 1-40 uS, programmed by program-and-verify to +-1 uS "
            "(30 pulses a ramp, 50 iterations: github weierwan/Neurram_48core, wupdate_control.py); programming "
            "spread and its growth at 1 s, 1 d and 2 d as fitted in aihwkit 1.1.0's ReRamWan2022NoiseModel, "
            "interpolated in log time; 256x256 cores."
        ),
        "device": {
            "g_min_us": 1.0,
            "g_max_us": 40.0,
            "t0_s": 1.0,
            "write_noise": {"kind": "polynomial", "coefficients": _NEURRAM_FITS[0], "g_max_reference_us": 40.0},
            "drift": {"kind": "relaxation", "times_s": _NEURRAM_TIMES, "coefficients": _NEURRAM_FITS, "g_max_reference_us": 40.0,
                      "starts_from": "programmed"},
        },
        "tile": {"rows": 256, "cols": 256, **_EIGHT_BIT},
        "programming": {
            "method": "verify", "start": "reset", "window_us": 1.0, "read_noise_us": 0.3, "max_pulses": 30, "max_iterations": 50,
            "pulse": {"step_us": 2.7, "step_growth": 0.0991, "step_spread": 0.502},
        },
    },
    "reram-cmo": {
        "name": "reram-cmo",
        "description": (
            "IBM CMO/HfOx ReRAM (aihwkit 1.1.0's ReRamCMONoiseModel, Falcone et al.): 9-88.2 uS, programming spread "
            "linear in G for a 2% acceptance range, level-independent decay and 1/f-like read noise in log time; "
            "stored on differential pairs (aihwkit maps one device per weight); 8-bit converters, 256x256 tiles."
        ),
        "device": {
            "g_min_us": 9.0,
            "g_max_us": 88.199997,
            "t0_s": 1.0,
            "write_noise": {"kind": "polynomial", "coefficients": [0.0112185391, 0.01129027418], "variable": "absolute"},
            "read_noise": {"kind": "log_conductance", "k": 0.0277316483, "t_read_s": 1e-6, "time": "per_epoch"},
            "drift": {"kind": "log_time", "mean_per_ln_s": -0.08900206, "std_per_ln_s": 0.04201137, "std_us": 0.41183342},
        },
        "tile": {"rows": 256, "cols": 256, **_EIGHT_BIT},
    },
    "aihwkit-hwa": {
        "name": "aihwkit-hwa",
        "description": (
            "aihwkit 1.1.0's StandardHWATrainingPreset inference chip (Rasch et al., Nat. Commun. 2023): PCMLikeNoiseModel "
            "devices plus its per-read PCM_READ weight noise (w_noise 0.0175: read noise with a variance following the "
            "current), 8-bit DAC with a calibrated input range (start 3.0), 8-bit ADC with bound 10, output noise 0.04, "
            "no bound management, column-wise weight scaling, digital bias, global drift compensation, 512-row tiles, "
            "wires of its ir_drop_g_ratio (0.07 ohm a segment at 25 uS; xbarsim's wire model, not aihwkit's fit)."
        ),
        "device": {
            **_PCM_DEVICE,
            "read_noise": {"kind": "combined", "parts": [{"kind": "pcm", "time": "per_epoch"}, {"kind": "current", "sigma": 0.0175}]},
        },
        "tile": {
            "rows": 512,
            "cols": 512,
            "dac": {"bits": 8, "range": "calibrated", "bound": 3.0},
            "adc": {"bits": 8, "range": "fixed", "bound": 10.0},
            "out_noise": 0.04,
            "wire_resistance_ohm": 0.07,
        },
        "mapping": {"weight_scale": "column", "bias": "digital"},
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

_HERMES = "aihwkit 1.1.0 aihwkit/inference/noise/hermes.py, HermesNoiseModel"
_WAN = "aihwkit 1.1.0 aihwkit/inference/noise/reram.py, ReRamWan2022NoiseModel"
_CMO = "aihwkit 1.1.0 aihwkit/inference/noise/reram.py, ReRamCMONoiseModel"
_HWA = "aihwkit 1.1.0 aihwkit/simulator/presets/inference.py, StandardHWATrainingPreset"

# Where each field of a preset comes from (shown by `xbarsim info`), for presets that reproduce a source.
PRESET_SOURCES: dict[str, dict[str, str]] = {
    "hermes": {
        "device.g_max_us, g_min_us": f"{_HERMES}.__init__: g_max = 10.35 (num_devices 1) / 20.7 (num_devices 2) uS; SinglePairConductanceConverter g_min 0",
        "device.t0_s": f"{_HERMES}.__init__: t_0 = 300 s when num_devices == 2",
        "device.write_noise": f"{_HERMES}.__init__: prog_coeff = [0.16603222, 4.71806468, -8.48101252, 4.68961419], "
                              "prog_coeff_g_max_reference 20.7 (num_devices 2): the spread of a two-device cell",
        "device.read_noise": f"{_HERMES}.apply_drift_noise_to_conductance: q_s piecewise (num_devices 2, break 0.16), t_read 512 ns; "
                             "on the cell's summed conductance, as aihwkit applies it to its one 20.7-uS conductance a polarity",
        "device.drift": f"{_HERMES}.generate_drift_coefficients: mu (break 0.0945), sd (num_devices 2, break 0.3055), nu = |mu + sd n|, "
                        "one per cell ('as if the two devices host the same conductance', the class docstring)",
        "mapping.devices_per_polarity": "Le Gallo et al., Nat. Electron. 2023 (two devices per polarity); HermesNoiseModel num_devices = 2",
        "programming": "Le Gallo et al. 2023: iterative programming, at most 30 iterations; a device whose window reaches "
                       "g_min (zero targets, and targets below 0.33 uS) is not verified: one pulse, the write-noise law's "
                       "draw (floor: reset); pulses sized by the read error (closed-loop iterative programming, as IBM's "
                       "'Precision of synaptic weights programmed in phase-change memory devices for deep learning inference' "
                       "describes it); window (0.107 uS + 69.8%, soft cap 1.28 uS), verify read noise (0.0204 uS + 2.05%) and "
                       "pulse (100% of |T - r|, 77.2% spread, RESET 0.976 of SET) fitted by benchmarks/fit_verify.py to the "
                       "two-device fit per target level and over the lowest |w| bin (docs/physics.md §2b)",
        "tile": "Le Gallo et al. 2023: 256x256 cores, 8-bit inputs and outputs; ADC bound and output noise as the pcm preset",
        "drift_compensation": "Le Gallo et al. 2023: global drift compensation",
    },
    "neurram": {
        "device.g_max_us, g_min_us": "Wan et al., Nature 2022: 1-40 uS; coeff fits for g_max 40 uS (reram.py: 'standard g_max are defined in respect to 40.0 uS')",
        "device.write_noise": f"{_WAN}.__init__: coeff_dic[1.0] = [-16.815, 45.393, -43.853, 16.030, 0.348][::-1]",
        "device.drift": f"{_WAN}.__init__: coeff_dic at 1 s, 86400 s, 172800 s, interpolated in log time (relaxation law); "
                        "the fits are deviations from the target, the verify residual included (starts_from: programmed)",
        "device.read_noise": f"{_WAN}: 'No separate data is available for read noise (1/f)': none",
        "programming": "github weierwan/Neurram_48core python/wupdate_control.py program_increment/program_array: +-g_tol "
                       "window, max_pulse_limit 30; g_tol = 1e-6 S (1 uS) and iteration_limit=50 as the authors' notebooks "
                       "call program_array (mnist_cnn/mnist_chip_inference.ipynb, cifar10_resnet/cifar10_resnet_chip_inference"
                       ".ipynb; there 0.18% and 0.77% of the devices did not converge); verify read noise 0.3 uS (not "
                       "from the source); pulse (step 2.7 uS growing 9.9% a pulse of a ramp, 50.2% spread) fitted by "
                       "benchmarks/fit_verify.py so that the residual's mean per target level is the fits' zero (docs/physics.md §2b)",
        "tile.rows, tile.cols": "Wan et al. 2022: 256x256 cores (16x16 corelets of 16x16)",
        "tile.dac.bits, tile.adc.bits": "github weierwan/Neurram_48core python/matmul.py: inputs bit-serial with a 3-bit "
                                        "num_bits register ((num_bits-1) & 0b111 in _setup_inference: 1-8 bits, signed inputs "
                                        "use one for the sign); outputs a sign and a 7-bit step count (_decode_row_output: "
                                        "np_bytes & 0x7f, sign bit 7): 8-bit signed converters at the chip's largest setting",
        "tile.dac.range, tile.adc.bound, tile.out_noise": "no checked source (the chip ranges its outputs by counting "
                                                          "charge-decrement steps): those of the pcm preset",
    },
    "reram-cmo": {
        "device.g_max_us, g_min_us": f"{_CMO}: SingleDeviceConductanceConverter(g_max=88.199997, g_min=9.0) "
                                     "(aihwkit/inference/converter/conductance.py)",
        "device.write_noise": f"{_CMO}.__init__: coeff_dict[2] = [0.01129027418, 0.0112185391][::-1] (uS, in G in uS: _apply_poly)",
        "device.drift": f"{_CMO}.__init__: decay_dict mean [-0.08900206], std [0.04201137, 0.41183342]; apply_drift_noise_to_conductance",
        "device.read_noise": f"{_CMO}.__init__: read_dict K 0.0277316483, t_read 1e-6; sigma_read = K log10(G) sqrt(ln((t + t_read)/(2 t_read)))",
        "mapping": "differential pairs (xbarsim); aihwkit stores one device per weight (SingleDeviceConductanceConverter)",
        "tile": "not from the source: 8-bit converters, 256x256 tiles",
    },
    "aihwkit-hwa": {
        "device": f"{_HWA}: noise_model = PCMLikeNoiseModel() (g_max 25, per-epoch 1/f read noise)",
        "device.read_noise": f"{_HWA}: PCMLikeNoiseModel's 1/f noise (per epoch) and forward w_noise 0.0175, w_noise_type "
                             "PCM_READ: output std w_noise sqrt(sum_j |w_ij| x_j^2) per read (aihwkit's C++ "
                             "applyOutputPCMReadNoise), xbarsim's read noise kind current with sigma 0.0175",
        "tile.wire_resistance_ohm": f"{_HWA}: ir_drop 1.0 (aihwkit/simulator/parameters/io.py: ir_drop_g_ratio = 1 / 0.35 / 5e-6, wire "
                                    "conductance per segment over g_max): r = 1 / (5.7143e5 x 25 uS) = 0.07 ohm; aihwkit's "
                                    "ir-drop fit itself is not copied (docs/physics.md §10)",
        "tile.rows, tile.cols": f"{_HWA}: MappingParameter max_input_size 512, max_output_size 0 (columns are not split; "
                                "with column-wise scaling a split changes no output)",
        "tile.dac": f"{_HWA}: inp_res 254 (8 bits), InputRangeParameter init_value 3.0, learned from data (calibrated)",
        "tile.adc": f"{_HWA}: out_res 254 (8 bits), out_bound 10",
        "tile.out_noise": f"{_HWA}: out_noise 0.04",
        "tile.bound_management": f"{_HWA}: BoundManagementType.NONE",
        "mapping.weight_scale": f"{_HWA}: weight_scaling_omega 1.0, weight_scaling_columnwise True",
        "mapping.bias": f"{_HWA}: digital_bias True",
        "drift_compensation": f"{_HWA}: drift_compensation = GlobalDriftCompensation",
    },
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
