"""Numba StructRef twins of the simulator's namedtuples of arrays.

A namedtuple of twenty arrays is passed to every Numba function by value,
flattened into hundreds of machine arguments: slow to compile and to call.
A StructRef is one pointer. Python code keeps the namedtuples (same arrays,
no copy); the event loop receives these twins.
"""

from numba import njit, types
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


def _twin_builder(typeclass):
    """An intrinsic building the StructRef twin of a namedtuple in one step.

    The twin's array fields are views without an owner (no meminfo). Reading an
    array field of a StructRef takes a reference: an atomic increment and decrement
    of the array's count, which made up about half the event loop's time; a view
    without an owner has nothing to count. The Python namedtuples keep the arrays
    alive (see `as_structs`). Building the payload here directly, rather than through
    structref's generated constructor, also saves compiling one per type.
    """

    @intrinsic
    def build(typingctx, fields):
        inst_type = typeclass(list(zip(fields.fields, fields.types, strict=True)))

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
            values = cgutils.unpack_tuple(builder, args[0])
            for name, ty, val in zip(fields.fields, fields.types, values, strict=True):
                if isinstance(ty, types.Array):
                    ary = context.make_array(ty)(context, builder, val)
                    view = context.make_array(ty)(context, builder)
                    for attr in ("nitems", "itemsize", "data", "shape", "strides"):
                        setattr(view, attr, getattr(ary, attr))
                    view.meminfo = cgutils.get_null_value(view.meminfo.type)
                    view.parent = cgutils.get_null_value(view.parent.type)
                    val = view._getvalue()
                setattr(data, name, val)
            inst = context.make_helper(builder, inst_type)
            inst.meminfo = meminfo
            return inst._getvalue()

        return inst_type(fields), codegen

    return build


_world_twin = _twin_builder(WorldType)
_dialer_twin = _twin_builder(DialerType)
_floor_twin = _twin_builder(FloorType)
_log_twin = _twin_builder(LogType)


@njit(cache=True)
def _structs(world, dialer, floor, log):
    # One compiled function for the four: each separately jitted function costs
    # a compile pipeline of its own on a cold cache.
    return _world_twin(world), _dialer_twin(dialer), _floor_twin(floor), _log_twin(log)


def as_structs(world, dialer, floor, log):
    """The StructRef twins of the four namedtuples, sharing their arrays.

    The twins do not own the arrays: keep the namedtuples alive as long as the
    twins are used (`sim.run.simulate` holds both for the whole day).
    """
    return _structs(world, dialer, floor, log)
