"""Standalone files nnfab copies to a board or host (they import numpy and the board's
own library only, never nnfab)."""
