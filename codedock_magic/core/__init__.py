"""The values every wing shares: errors, limits, profile, request, result, interrupts.

It imports nothing else of the package; everything else imports it.
"""
