"""The operator's views across customers: MRR, revenue by month, invoices by state."""
