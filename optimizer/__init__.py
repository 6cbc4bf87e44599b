"""Contact-probability model and the allocation of volume over carriers.

Its Numba kernels cache per source version: see `smartdial.jitcache`.
"""

from smartdial import jitcache

jitcache.configure()
