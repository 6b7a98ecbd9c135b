"""Multi-granularity conversational memory (MemGAS). Not built yet: see the memory issue."""
