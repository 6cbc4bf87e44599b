"""smartdial: predictive dialer and carrier traffic optimiser.

This package holds only the command line and the exception family; the parts
live in the sibling packages configs/, optimizer/, dialer/, telephony/, sim/.
"""
