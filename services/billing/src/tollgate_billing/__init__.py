"""The billing service: plans and prices, the pricing engine and one billing customer per org."""
