"""Borrowed views of the simulator's StructRef twins: a bare pointer to their fields.

The event loop only reads the twins' fields; it never keeps a twin beyond its
call. Numba's lowering counts a reference each time a StructRef is copied or
passed to a helper (an atomic increment and decrement of its meminfo), which
was about a quarter of the loop's time. A borrowed view carries no meminfo, so
there is nothing to count: it is valid while the StructRef it came from is
alive (`borrow` in `sim.kernel.run_until`, for the length of that call), and
so are the arrays read from it: they too come without an owner, so they must
not outlive the view. Numba only.
"""

from numba.core import cgutils, types
from numba.core.extending import (
    intrinsic,
    lower_getattr_generic,
    models,
    register_model,
)
from numba.core.imputils import impl_ret_borrowed
from numba.core.typing.templates import AttributeTemplate, infer_getattr


class Borrowed(types.Type):
    """A StructRef's fields, read through a plain pointer to its payload."""

    def __init__(self, ref_type):
        self.ref_type = ref_type
        super().__init__(name=f"Borrowed[{ref_type}]")


@register_model(Borrowed)
class _BorrowedModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        payload = dmm.lookup(fe_type.ref_type.get_data_type()).get_value_type()
        super().__init__(dmm, fe_type, payload.as_pointer())


@infer_getattr
class _BorrowedAttrs(AttributeTemplate):
    key = Borrowed

    def generic_resolve(self, typ, attr):
        return typ.ref_type.field_dict.get(attr)


@lower_getattr_generic(Borrowed)
def _borrowed_getattr(context, builder, typ, val, attr):
    data = cgutils.create_struct_proxy(typ.ref_type.get_data_type())(
        context, builder, ref=val
    )
    ty = typ.ref_type.field_dict[attr]
    value = getattr(data, attr)
    if isinstance(ty, types.Array):
        # The twins' arrays have no owner (sim.structs); a constant null meminfo
        # tells LLVM so, and the reference counting around the array folds away.
        arr = context.make_array(ty)(context, builder, value=value)
        arr.meminfo = cgutils.get_null_value(arr.meminfo.type)
        value = arr._getvalue()
    return impl_ret_borrowed(context, builder, ty, value)


@intrinsic
def borrow(typingctx, struct):
    """A borrowed view of `struct` (a StructRef); valid while `struct` is alive.
    A view is returned as it is, so functions can take either."""
    if isinstance(struct, Borrowed):
        return struct(struct), lambda context, builder, sig, args: args[0]
    if not isinstance(struct, types.StructRef):
        return None

    def codegen(context, builder, sig, args):
        payload = context.data_model_manager[struct.get_data_type()].get_value_type()
        ref = cgutils.create_struct_proxy(struct)(context, builder, value=args[0])
        data = context.nrt.meminfo_data(builder, ref.meminfo)
        return builder.bitcast(data, payload.as_pointer())

    return Borrowed(struct)(struct), codegen
