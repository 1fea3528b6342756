"""The sans-I/O call-distribution engine.

Nothing in this package does I/O, reads a clock or draws global randomness:
it takes events and the current time and returns commands, plus the time it
next needs to be woken (`Engine.next_deadline`).
"""
