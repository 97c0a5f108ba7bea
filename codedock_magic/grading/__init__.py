"""Grading: cases (:mod:`.cases`), judging an output (:mod:`.compare`), a check and
its verdicts (:mod:`.check`), a class's folder (:mod:`.submissions`) and the batch
behind ``codedock grade`` (:mod:`.batch`). It runs through :mod:`codedock_magic.runner`.
"""
