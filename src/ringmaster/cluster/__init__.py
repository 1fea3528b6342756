"""The cluster's sans-I/O core: tenant shards, their placement on nodes, and leases.

Like the engine, nothing here does I/O, reads a clock or draws randomness: the
daemon's adapter reads the lease table, hands the rows and the current time to
`leases.NodeLeases`, and carries out the actions it returns (docs/cluster.md).
"""
