"""Runs on an engine this process holds.

The backend (:mod:`.backend`), one container's life (:mod:`.sandbox`), the
conversation with its supervisor for a run (:mod:`.execution`) and a run with
cases (:mod:`.caserun`), the warm pool (:mod:`.pool`), and what comes back
(:mod:`.output`, :mod:`.rich`). The only wing that talks to the supervisor.
"""
