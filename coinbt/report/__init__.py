"""Reports a quant reads: flat tables (CSV, Parquet), pandas frames and the HTML tear sheet.

Imports nothing asynchronous; pandas and pyarrow are optional extras imported only when used.
"""
