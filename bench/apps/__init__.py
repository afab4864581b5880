"""The same benchmark task written for each system compared."""
