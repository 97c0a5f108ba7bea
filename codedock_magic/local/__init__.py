"""Runs on an engine this process holds.

The backend (:mod:`.backend`), a supervised sandbox started (:mod:`.sandbox`), the
conversation with its supervisor for a run (:mod:`.conversation`) and a run with
cases (:mod:`.caserun`), the warm pool (:mod:`.pool`), and what comes back
(:mod:`.output`, :mod:`.display`). The only wing that talks to the supervisor.
"""
