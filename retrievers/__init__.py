"""Retrieval: the vector store adapters, BM25 sparse vectors and the search strategies."""
