"""Numba StructRef twins of the simulator's namedtuples of arrays.

A namedtuple of twenty arrays is passed to every Numba function by value,
flattened into hundreds of machine arguments: slow to compile and to call.
A StructRef is one pointer. Python code keeps the namedtuples (same arrays,
no copy); the event loop receives these twins.
"""

from numba import njit, types
from numba.experimental import structref

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


@njit(cache=True)
def _structs(world, dialer, floor, log):
    # One compiled function for the four: each separately jitted function costs
    # a compile pipeline of its own on a cold cache.
    return WorldStruct(*world), DialerStruct(*dialer), FloorStruct(*floor), LogStruct(*log)


def as_structs(world, dialer, floor, log):
    """The StructRef twins of the four namedtuples, sharing their arrays."""
    return _structs(world, dialer, floor, log)
