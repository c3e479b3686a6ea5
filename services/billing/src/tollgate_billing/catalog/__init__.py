"""The plan catalog: what the operator sells, at which prices, with which rate-limit tier."""
