"""Networks shared by several methods (each lives here once)."""
