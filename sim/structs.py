"""Numba StructRef twins of the simulator's namedtuples of arrays.

A namedtuple of twenty arrays is passed to every Numba function by value,
flattened into hundreds of machine arguments: slow to compile and to call.
A StructRef is one pointer. Python code keeps the namedtuples (same arrays,
no copy); the event loop receives these twins.
"""

from numba import njit, types
from numba.core import cgutils
from numba.experimental import structref
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
def _borrowed(typingctx, fields):
    """The tuple with each array replaced by a view without an owner (no meminfo).

    Reading an array field of a StructRef takes a reference: an atomic increment
    and decrement of the array's count, which made up about half the event loop's
    time. A view without an owner has nothing to count. The Python namedtuples keep
    the arrays alive; `as_structs` documents that contract.
    """
    def codegen(context, builder, sig, args):
        items = []
        for ty, val in zip(sig.args[0], cgutils.unpack_tuple(builder, args[0]), strict=True):
            if isinstance(ty, types.Array):
                ary = context.make_array(ty)(context, builder, val)
                view = context.make_array(ty)(context, builder)
                for name in ("nitems", "itemsize", "data", "shape", "strides"):
                    setattr(view, name, getattr(ary, name))
                view.meminfo = cgutils.get_null_value(view.meminfo.type)
                view.parent = cgutils.get_null_value(view.parent.type)
                val = view._getvalue()
            items.append(val)
        return context.make_tuple(builder, sig.return_type, items)

    return fields(fields), codegen


@njit(cache=True)
def _structs(world, dialer, floor, log):
    # One compiled function for the four: each separately jitted function costs
    # a compile pipeline of its own on a cold cache.
    return (
        WorldStruct(*_borrowed(world)), DialerStruct(*_borrowed(dialer)),
        FloorStruct(*_borrowed(floor)), LogStruct(*_borrowed(log)),
    )


def as_structs(world, dialer, floor, log):
    """The StructRef twins of the four namedtuples, sharing their arrays.

    The twins do not own the arrays: keep the namedtuples alive as long as the
    twins are used (`sim.run.simulate` holds both for the whole day).
    """
    return _structs(world, dialer, floor, log)
