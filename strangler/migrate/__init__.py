"""The autopilot: a route's ``migrate`` plan advances itself, stage by stage, gated by
shadow parity and the new side's figures against the primary's, and steps back on its
own. ``machine`` is the pure stage machine; ``figures`` reads the window's figures;
``runner`` evaluates plans (one process at a time, under a lease) and applies shares
through the release controls.
"""
