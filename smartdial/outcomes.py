"""The outcome of a call attempt: one small integer code shared by every part.

Codes are small integers so that NumPy arrays and Numba kernels carry them;
names are for people, logs and messages.
"""

from enum import IntEnum

import numpy as np


class Outcome(IntEnum):
    CONTACT = 0  # human answered and was connected to an agent
    ABANDONED = 1  # human answered, no agent within the abandon window (2 s)
    MACHINE = 2  # answering machine / voicemail
    BUSY = 3
    NO_ANSWER = 4  # rang out (ring timeout or far end gave up)
    CONGESTION = 5  # carrier or network had no channel (503, CPS/channel limit)
    INVALID = 6  # unallocated / invalid number (404, cause 1)
    FAILED = 7  # anything else: rejected, protocol failure


N_OUTCOMES = len(Outcome)
ANSWERED = (Outcome.CONTACT, Outcome.ABANDONED, Outcome.MACHINE)
HUMAN = (Outcome.CONTACT, Outcome.ABANDONED)

# NumPy scalars for Numba kernels: an IntEnum member does not lower to a number
# there, and a plain int would be typed as a literal, compiling a callee once per code.
CONTACT, ABANDONED, MACHINE, BUSY, NO_ANSWER, CONGESTION, INVALID, FAILED = (
    np.int64(o) for o in Outcome
)
