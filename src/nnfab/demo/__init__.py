"""The demo: a small jet-tagging-like network shipped with nnfab."""
