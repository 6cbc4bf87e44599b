"""Numba StructRef twins of the simulator's namedtuples of arrays.

A namedtuple of twenty arrays is passed to every Numba function by value,
flattened into hundreds of machine arguments: slow to compile and to call.
A StructRef is one pointer. Python code keeps the namedtuples (same arrays,
no copy); the event loop receives these twins.
"""

import numpy as np
from numba import njit, typeof, types
from numba.core import cgutils
from numba.experimental import structref
from numba.experimental.jitclass.base import imp_dtor
from numba.extending import intrinsic

from dialer.state import Dialer
from sim.kernel import Floor, Log, World


def _register(name: str, fields: tuple[str, ...]):
    # The classes are named as the module attributes they are bound to, so the
    # cache pickles them by reference: a copy pickled by value would be a
    # different type without the fields' typing, and cached kernels would fail.
    typ = structref.register(
        type(f"{name}Type", (types.StructRef,), {
            "preprocess_fields": lambda self, fs: tuple((n, types.unliteral(t)) for n, t in fs),
            "__module__": __name__,
        })
    )
    proxy = type(f"{name}Struct", (structref.StructRefProxy,), {"__module__": __name__})
    structref.define_constructor(proxy, typ, fields)
    structref.define_boxing(typ, proxy)
    return typ, proxy


WorldType, WorldStruct = _register("World", World._fields)
DialerType, DialerStruct = _register("Dialer", Dialer._fields)
FloorType, FloorStruct = _register("Floor", Floor._fields)
LogType, LogStruct = _register("Log", Log._fields)


@intrinsic
def _twin(typingctx, struct_ref, desc):
    """The StructRef twin described by `desc` (see `_describe`), built in one step.

    The twin's array fields are views without an owner (no meminfo). Reading an
    array field of a StructRef takes a reference: an atomic increment and decrement
    of the array's count, which made up about half the event loop's time; a view
    without an owner has nothing to count. The Python namedtuples keep the arrays
    alive (see `as_structs`). The arrays travel as raw (pointer, shape, strides)
    words in one int64 array rather than as a namedtuple: unboxing seventy arrays
    from Python was most of this function's compile time on a cold cache.
    """
    inst_type = struct_ref.instance_type

    def codegen(context, builder, sig, args):
        data_type = inst_type.get_data_type()
        alloc_type = context.data_model_manager[data_type].get_value_type()
        meminfo = context.nrt.meminfo_alloc_dtor(
            builder,
            context.get_constant(types.uintp, context.get_abi_sizeof(alloc_type)),
            imp_dtor(context, builder.module, inst_type),
        )
        ptr = builder.bitcast(context.nrt.meminfo_data(builder, meminfo),
                              alloc_type.as_pointer())
        builder.store(cgutils.get_null_value(alloc_type), ptr)
        data = cgutils.create_struct_proxy(data_type)(context, builder, ref=ptr)
        words = context.make_array(sig.args[1])(context, builder, args[1]).data
        pos = 0

        def word():
            nonlocal pos
            pos += 1
            return builder.load(cgutils.gep(builder, words, pos - 1))

        for name, ty in inst_type.field_dict.items():
            if isinstance(ty, types.Array):
                view = context.make_array(ty)(context, builder)
                data_ptr = builder.inttoptr(word(), view.data.type)
                shape = [word() for _ in range(ty.ndim)]
                strides = [word() for _ in range(ty.ndim)]
                itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
                    context.get_data_type(ty.dtype)))
                context.populate_array(view, data=data_ptr,
                                       shape=cgutils.pack_array(builder, shape),
                                       strides=cgutils.pack_array(builder, strides),
                                       itemsize=itemsize, meminfo=None)
                setattr(data, name, view._getvalue())
            else:
                setattr(data, name, context.cast(builder, word(), types.int64, ty))
        inst = context.make_helper(builder, inst_type)
        inst.meminfo = meminfo
        return inst._getvalue()

    return inst_type(struct_ref, desc), codegen


@njit(cache=True)
def _structs(tw, dw, fw, lw, w, d, f, log):
    # One compiled function for the four: each separately jitted function costs
    # a compile pipeline of its own on a cold cache.
    return _twin(tw, w), _twin(dw, d), _twin(fw, f), _twin(lw, log)


def _describe(typeclass, tup) -> tuple:
    """(the twin's type, its fields as int64 words: per array its data pointer, shape
    and strides; per integer its value)."""
    fields, words = [], []
    for name, value in zip(tup._fields, tup, strict=True):
        if isinstance(value, np.ndarray):
            words += [value.ctypes.data, *value.shape, *value.strides]
        elif isinstance(value, int | np.integer):
            words.append(int(value))
        else:
            raise TypeError(f"{type(tup).__name__}.{name}: arrays and integers only")
        fields.append((name, typeof(value)))
    return typeclass(fields), np.array(words, np.int64)


def as_structs(world, dialer, floor, log):
    """The StructRef twins of the four namedtuples, sharing their arrays.

    The twins do not own the arrays: keep the namedtuples alive as long as the
    twins are used (`sim.run.simulate` holds both for the whole day).
    """
    (tw, w), (td, d), (tf, f), (tl, lg) = (
        _describe(typeclass, tup) for typeclass, tup in
        ((WorldType, world), (DialerType, dialer), (FloorType, floor), (LogType, log))
    )
    return _structs(tw, td, tf, tl, w, d, f, lg)
