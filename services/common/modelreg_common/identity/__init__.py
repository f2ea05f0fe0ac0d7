"""Who is calling: credentials and the principals they prove."""
