"""``streamer ui``: a search page over the vector store (and, next, the query trainer)."""
