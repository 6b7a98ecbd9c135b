"""The Gradio web chat and the Textual terminal chat. Not built yet: see the terminal and web chat issues."""
