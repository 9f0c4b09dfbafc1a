"""Market data beyond parsing: gap reports, resampling, staging imports, exchange archives.

``gaps`` and ``resample`` are pure numpy on :class:`coinbt.engine.Bars`; ``spool`` writes an
import to disk a chunk at a time; ``binance`` downloads Binance's public kline archive.
"""
