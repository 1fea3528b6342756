"""Erlang B and Erlang C: the exact M/M/c results that `ringmaster simulate` is checked against.

An M/M/c queue has Poisson arrivals, exponential handle times, `c` agents and
first-come-first-served service with no abandonment. With offered load
``a = arrival rate x mean handle time`` (in Erlangs) and ``a < c``:

- Erlang B, ``B(c, a)``, is the blocking probability of the loss system, by
  the stable recurrence ``B(0) = 1``, ``B(k) = a B(k-1) / (k + a B(k-1))``.
- Erlang C, the probability that a call waits, is
  ``C = c B / (c - a (1 - B))``.
- The average speed of answer is ``ASA = C x mean handle / (c - a)``.
- The service level, the share of calls answered within ``t`` seconds, is
  ``1 - C exp(-(c - a) t / mean handle)``.
"""

from __future__ import annotations

import math


def erlang_b(agents: int, load: float) -> float:
    """The Erlang B blocking probability for `agents` servers and `load` Erlangs."""
    if agents < 0 or load < 0:
        raise ValueError("agents and load must not be negative")
    b = 1.0
    for k in range(1, agents + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(agents: int, load: float) -> float:
    """The probability that a call waits (Erlang C); 1.0 when the queue is unstable."""
    if agents <= load:
        return 1.0
    b = erlang_b(agents, load)
    return agents * b / (agents - load * (1.0 - b))


def average_speed_of_answer(agents: int, load: float, mean_handle_s: float) -> float:
    """The mean wait of all calls (waiting or not), in seconds; inf when unstable."""
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * mean_handle_s / (agents - load)


def service_level(agents: int, load: float, mean_handle_s: float, threshold_s: float) -> float:
    """The share of calls answered within `threshold_s` seconds; 0.0 when unstable."""
    if agents <= load:
        return 0.0
    decay = math.exp(-(agents - load) * threshold_s / mean_handle_s)
    return 1.0 - erlang_c(agents, load) * decay
