"""The audit journal: a hash-chained, append-only JSON-lines record of every action.

``console.core.journal`` is the public import point; the modules here each do one job:
``entry`` (the entry and its hash), ``lines`` (reading the file), ``writer`` (locked,
fsynced appends), ``verify`` (chain and anchor checks), ``record`` (intent/outcome around a
platform call) and ``export`` (the decision record of a rollout).
"""
