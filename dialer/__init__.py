"""The dialer's decisions (pacing, hopper, routing) and their state.

Its Numba kernels cache per source version: see `smartdial.jitcache`.
"""

from smartdial import jitcache

jitcache.configure()
