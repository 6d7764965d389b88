"""A float32 sum of squares in a fixed order that still runs in SIMD registers.

Element i of a run goes into lane i % SQ_LANES, each lane sums in order, then the lanes are added
in order 0, 1, ..., SQ_LANES - 1 (``reference.lane_sum_of_squares`` is the NumPy twin). Written in
Numba the lanes live in memory and every add is a scalar load and store (LLVM cannot vectorise a
float reduction without reordering it); here the intrinsic keeps them in one LLVM vector of
SQ_LANES floats, so each group costs one vector multiply and add (~0.1 ns per element on one
thread, against ~0.4 ns). The order, and so every bit, is the same on any vector width.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

SQ_LANES = 16


@intrinsic
def sum_of_squares_by_lane(typingctx, values, row, start, stop):
    """float32 sum over i in [start, stop) of values[row, i]^2, in lanes as the module says.

    values: a C-contiguous 2-D float32 array; row, start, stop: integers, not checked
    (0 <= row < rows, 0 <= start <= stop <= columns)."""
    if not (isinstance(values, types.Array) and values.dtype == types.float32 and values.ndim == 2 and values.layout == "C"):
        return None
    if not all(isinstance(arg, types.Integer) for arg in (row, start, stop)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        row_i, start_i, stop_i = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:]))
        width = builder.extract_value(array.shape, 1)
        first = builder.gep(array.data, [builder.add(builder.mul(row_i, width), start_i)])
        n = builder.sub(stop_i, start_i)
        f32 = ir.FloatType()
        vector = ir.VectorType(f32, SQ_LANES)
        lanes_n = ir.Constant(n.type, SQ_LANES)
        groups = builder.sdiv(n, lanes_n)
        lanes = cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * SQ_LANES))
        group_ptr = builder.bitcast(first, vector.as_pointer())
        with cgutils.for_range(builder, groups) as loop:  # full groups: lane l += v[l]^2, all lanes at once
            v = builder.load(builder.gep(group_ptr, [loop.index]), align=4)
            builder.store(builder.fadd(builder.load(lanes), builder.fmul(v, v)), lanes)
        # the tail: element n_full + k into lane k, on the lanes in memory (an SSA vector indexed by a
        # variable goes through the stack at every element: ~15 ns each)
        lanes_memory = cgutils.alloca_once(builder, vector)
        builder.store(builder.load(lanes), lanes_memory)
        lane_ptr = builder.bitcast(lanes_memory, f32.as_pointer())
        n_full = builder.mul(groups, lanes_n)
        with cgutils.for_range(builder, builder.sub(n, n_full)) as loop:
            v = builder.load(builder.gep(first, [builder.add(n_full, loop.index)]))
            lane = builder.gep(lane_ptr, [loop.index])
            builder.store(builder.fadd(builder.load(lane), builder.fmul(v, v)), lane)
        acc = builder.load(lanes_memory)
        total = ir.Constant(f32, 0.0)
        for lane in range(SQ_LANES):
            total = builder.fadd(total, builder.extract_element(acc, ir.Constant(ir.IntType(32), lane)))
        return total

    return types.float32(values, row, start, stop), codegen
