"""Runs on the sandbox service: the kernel's client (:mod:`.client`) and the JSON
forms of runs and results that both sides share (:mod:`.wire`).
"""
