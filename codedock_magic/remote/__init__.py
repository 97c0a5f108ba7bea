"""Runs on the sandbox service: the kernel's client (:mod:`.client`), the HTTP it speaks
(:mod:`.transport`, the standard library's, so a kernel pays little for it), and the JSON
forms of runs and results that both sides share (:mod:`.wire`).
"""
