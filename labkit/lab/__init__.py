"""Provisioning, in the order it runs: config -> graph -> plan -> apply -> destroy -> verify, and its cost.

`resources/` holds one class per AWS resource type, each declaring how it is found, created, deleted and
priced; the registry there is the one list that stages, deletion order, the class scan and cost derive from.
"""
