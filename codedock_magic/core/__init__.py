"""The values every wing shares: errors, limits, profile, request, result, budget, interrupts.

The budget (:mod:`.budget`) is what a run and a check keep beyond their output:
the notes, and one output cap shared by a check's cases.

It imports nothing else of the package; everything else imports it.
"""
