"""The cache: atomic files and locks (files), and where each cached entry lives (layout)."""
