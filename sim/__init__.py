"""The discrete-event simulator: world, event loop, KPIs, reports.

Its Numba kernels cache per source version: see `smartdial.jitcache`.
"""

from smartdial import jitcache

jitcache.configure()
